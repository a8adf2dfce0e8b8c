package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/database/pgbouncertest"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// TestWorkerAndAPIThroughPgBouncer runs the real `worker` and `api` commands
// with DATABASE_URL pointing at a real PgBouncer in transaction pooling mode
// and checks what production needs through it: a send that reaches
// delivered (job, vendor call, signed status callback, event), a hold by a
// paused destination that resume releases, a dead letter, and events read
// by polling.
func TestWorkerAndAPIThroughPgBouncer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	through := pgbouncertest.Start(t, dbtest.NewDatabase(t))

	hexID := func(n int) string { b := make([]byte, n); _, _ = rand.Read(b); return hex.EncodeToString(b) }
	sid, token := "AC"+hexID(16), hexID(16)
	box := twiliosandbox.New(twiliosandbox.Config{AccountSID: sid, AuthToken: token, CallbackDelay: 20 * time.Millisecond}, nil)
	boxSrv := httptest.NewServer(box)
	defer boxSrv.Close()
	go func() { _ = box.Run(ctx) }()

	apiAddr, workerAddr := freeAddr(t), freeAddr(t)
	for k, v := range map[string]string{
		"DATABASE_URL": through, "DATABASE_POOL_MODE": "transaction",
		"API_ADDR": apiAddr, "PUBLIC_BASE_URL": "http://" + apiAddr, "WORKER_ADDR": workerAddr,
		"API_METRICS_ADDR": freeAddr(t), "WORKER_METRICS_ADDR": freeAddr(t),
		"TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_FROM_NUMBER": "+15005550006",
		"TWILIO_API_BASE_URL": boxSrv.URL, "SMS_PROVIDERS": "twilio",
		"WORKER_QUEUES": "sms=10,inbound=5,maintenance=1,fhir=1", "LOG_LEVEL": "warn",
	} {
		t.Setenv(k, v)
	}
	done := make(chan error, 2)
	for _, cmd := range []string{"worker", "api"} {
		go func() { done <- run(ctx, []string{cmd}, io.Discard, testLog{t}) }()
	}
	defer func() {
		cancel()
		for range 2 {
			<-done
		}
	}()

	pool, err := database.Open(ctx, database.Config{URL: through, PoolMode: database.PoolTransaction, MaxConns: 4})
	require.NoError(t, err)
	defer pool.Close()
	send := func(key, body string) string {
		var id string
		require.NoError(t, pool.QueryRow(ctx, `SELECT switchboard.send_sms(idempotency_key => $1, to_e164 => '+14155550123', body => $2)::text`, key, body).Scan(&id))
		return id
	}
	statusOf := func(id string) string {
		var s string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM switchboard.messages WHERE id = $1::bigint`, id).Scan(&s))
		return s
	}
	// Bounds against a hang, not timings: a busy machine takes seconds.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			select {
			case err := <-done:
				t.Fatalf("a command exited while waiting for %s: %v", what, err)
			default:
			}
			require.True(t, time.Now().Before(deadline), "still waiting for %s", what)
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A send reaches delivered: job fetched by polling, vendor call, signed
	// status callback into the api, message updated.
	first := send("pgb-1", "first through pgbouncer")
	waitFor("the first message to be delivered", func() bool { return statusOf(first) == "delivered" })

	// A paused destination holds the job (snoozed, no attempt spent, nothing
	// sent); resume releases it.
	out, err := runCLI(t, "destination", "pause", "twilio")
	require.NoError(t, err, out)
	held := send("pgb-2", "held through pgbouncer")
	waitFor("the job to be held", func() bool {
		var snoozed bool
		var row string
		require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce((metadata->>'snoozes')::int, 0) > 0 AND attempt = 0, concat_ws(' ', state, attempt, metadata, args)
			FROM switchboard.river_job WHERE kind = 'sms_send' AND args->>'message_id' = $1`, held).Scan(&snoozed, &row))
		_ = row
		return snoozed
	})
	require.Len(t, box.Messages(), 1, "nothing sent while paused")
	out, err = runCLI(t, "destination", "resume", "twilio")
	require.NoError(t, err, out)
	waitFor("the held message to be delivered after resume", func() bool { return statusOf(held) == "delivered" })

	// A permanent vendor error ends in a dead letter.
	box.InjectFaults(twiliosandbox.Fault{Status: 400, Code: 21408})
	dead := send("pgb-3", "dead letter through pgbouncer")
	waitFor("a dead letter", func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.dead_letters d
			JOIN switchboard.messages m ON m.job_id = d.job_id WHERE m.id = $1::bigint`, dead).Scan(&n))
		return n == 1
	})

	// Events are read by polling by id (LISTEN needs a session).
	var delivered int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.events WHERE id > 0 AND kind = 'message.delivered'`).Scan(&delivered))
	require.Equal(t, 2, delivered)
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
