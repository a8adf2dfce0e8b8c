package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// The chaos run itself is tested in internal/chaos (it needs a built
// binary to run as the worker and api processes); here, its command line.

func TestChaosAndHealthcheckAnswerHelp(t *testing.T) {
	for _, args := range [][]string{{"chaos", "--help"}, {"healthcheck", "--help"}} {
		out, err := runCLI(t, args...)
		require.ErrorIs(t, err, errHelp, args)
		require.Contains(t, out, "Usage: switchboard "+args[0], args)
	}
	out, _ := runCLI(t, "chaos", "--help")
	for _, flag := range []string{"-mode", "-duration", "-rate", "-seed", "-messages", "-kill-every", "-pg-restart", "-outage", "-drain"} {
		require.Contains(t, out, flag)
	}
}

func TestChaosMistakesAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"chaos", "--mode", "sideways"},
		{"chaos", "extra"},
		{"chaos", "--rate", "fast"},
		{"chaos", "--duration", "3h"},
		{"healthcheck"},
		{"healthcheck", "not a url"},
		{"healthcheck", "ftp://127.0.0.1/x"},
	} {
		_, err := runCLI(t, args...)
		var ue usageError
		require.ErrorAs(t, err, &ue, args)
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	_, err := runCLI(t, "healthcheck", srv.URL+"/healthz")
	require.NoError(t, err)

	status.Store(http.StatusServiceUnavailable)
	_, err = runCLI(t, "healthcheck", srv.URL+"/healthz")
	require.ErrorContains(t, err, "503")
	var ue usageError
	require.NotErrorAs(t, err, &ue, "an unhealthy answer is not a usage mistake")

	srv.Close()
	_, err = runCLI(t, "healthcheck", "--timeout", "500ms", srv.URL+"/healthz")
	require.ErrorContains(t, err, "unhealthy")
}
