package httpserver_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/httpserver"
)

func TestServe(t *testing.T) {
	t.Parallel()

	logger := slog.New(slog.DiscardHandler)

	t.Run("ReturnsNilAfterContextCancel", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- httpserver.ServeListener(ctx, ln, httpserver.Probes(nil), logger) }()

		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "ok\n", string(body))

		cancel()
		require.NoError(t, <-done)

		_, err = http.Get("http://" + ln.Addr().String() + "/healthz")
		require.Error(t, err, "the listener is closed after shutdown")
	})

	t.Run("InFlightRequestFinishes", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		started := make(chan struct{})
		release := make(chan struct{})
		reqErr := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-release
			reqErr <- r.Context().Err()
			_, _ = w.Write([]byte("done"))
		})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- httpserver.ServeListener(ctx, ln, h, logger) }()

		type result struct {
			status int
			body   string
			err    error
		}
		got := make(chan result, 1)
		go func() {
			resp, err := http.Get("http://" + ln.Addr().String() + "/")
			if err != nil {
				got <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			got <- result{status: resp.StatusCode, body: string(b), err: err}
		}()

		<-started
		cancel()
		close(release)
		r := <-got
		require.NoError(t, r.err)
		require.Equal(t, http.StatusOK, r.status)
		require.Equal(t, "done", r.body)
		require.NoError(t, <-reqErr, "shutdown must not cancel in-flight requests")
		require.NoError(t, <-done)
	})

	t.Run("ConfigServeShutsDownBeforeAnyRequest", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		cfg := httpserver.Config{ReadTimeout: httpserver.DefaultReadTimeout, ShutdownTimeout: httpserver.DefaultShutdownTimeout}
		go func() { done <- cfg.ServeListener(ctx, ln, httpserver.Probes(nil), logger) }()
		cancel()
		require.NoError(t, <-done)
	})

	t.Run("ErrorWhenAddressIsUnusable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		err = httpserver.Serve(t.Context(), ln.Addr().String(), httpserver.Probes(nil), logger)
		require.ErrorContains(t, err, "error listening on")
	})
}
