package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// stack is the real `worker` and `api` commands run in-process against one
// database, with a sandbox Twilio, the way a deployment runs them. The
// environment is set with t.Setenv, so a test using it is not parallel.
type stack struct {
	t    *testing.T
	ctx  context.Context
	box  *twiliosandbox.Server
	pool *pgxpool.Pool
	done chan error
}

// startStack starts the sandbox, then worker and api with the sandbox's
// credentials plus env, on databaseURL; wrap, when set, wraps the sandbox's
// handler (to see the requests it gets). Everything stops at cleanup.
func startStack(t *testing.T, databaseURL string, env map[string]string, wrap func(http.Handler) http.Handler) *stack {
	ctx, cancel := context.WithCancel(context.Background())
	hexID := func(n int) string { b := make([]byte, n); _, _ = rand.Read(b); return hex.EncodeToString(b) }
	sid, token := "AC"+hexID(16), hexID(16)
	box := twiliosandbox.New(twiliosandbox.Config{AccountSID: sid, AuthToken: token, CallbackDelay: 20 * time.Millisecond}, nil)
	var h http.Handler = box
	if wrap != nil {
		h = wrap(box)
	}
	boxSrv := httptest.NewServer(h)
	go func() { _ = box.Run(ctx) }()

	apiAddr := freeAddr(t)
	all := map[string]string{
		"DATABASE_URL": databaseURL,
		"API_ADDR":     apiAddr, "PUBLIC_BASE_URL": "http://" + apiAddr, "WORKER_ADDR": freeAddr(t),
		"API_METRICS_ADDR": freeAddr(t), "WORKER_METRICS_ADDR": freeAddr(t),
		"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_FROM_NUMBER": "+15005550006",
		"TWILIO_API_BASE_URL": boxSrv.URL, "SMS_PROVIDERS": "twilio",
		"WORKER_QUEUES": "sms=10,inbound=5,maintenance=1,fhir=1", "LOG_LEVEL": "warn",
	}
	for k, v := range env {
		all[k] = v
	}
	for k, v := range all {
		t.Setenv(k, v)
	}
	s := &stack{t: t, ctx: ctx, box: box, done: make(chan error, 2)}
	for _, cmd := range []string{"worker", "api"} {
		go func() { s.done <- run(ctx, []string{cmd}, io.Discard, testLog{t}) }()
	}
	mode, err := database.ParsePoolMode(all["DATABASE_POOL_MODE"])
	require.NoError(t, err)
	s.pool, err = database.Open(ctx, database.Config{URL: databaseURL, PoolMode: mode, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() {
		s.pool.Close()
		cancel()
		for range 2 {
			<-s.done
		}
		boxSrv.Close()
	})
	return s
}

// send calls switchboard.send_sms as an app would and returns the message id.
func (s *stack) send(key, body string) string {
	var id string
	require.NoError(s.t, s.pool.QueryRow(s.ctx, `SELECT switchboard.send_sms(idempotency_key => $1, to_e164 => '+14155550123', body => $2)::text`, key, body).Scan(&id))
	return id
}

func (s *stack) status(id string) string {
	var st string
	require.NoError(s.t, s.pool.QueryRow(s.ctx, `SELECT status FROM switchboard.messages WHERE id = $1::bigint`, id).Scan(&st))
	return st
}

// waitFor polls cond. The bound is against a hang, not a timing: a busy
// machine may take many seconds.
func (s *stack) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		select {
		case err := <-s.done:
			s.t.Fatalf("a command exited while waiting for %s: %v", what, err)
		default:
		}
		require.True(s.t, time.Now().Before(deadline), "still waiting for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
