package main

import (
	"testing"

	"github.com/stretchr/testify/require"

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
	through := pgbouncertest.Start(t, dbtest.NewDatabase(t))
	s := startStack(t, through, map[string]string{"DATABASE_POOL_MODE": "transaction"}, nil)

	// A send reaches delivered: job fetched by polling, vendor call, signed
	// status callback into the api, message updated.
	first := s.send("pgb-1", "first through pgbouncer")
	s.waitFor("the first message to be delivered", func() bool { return s.status(first) == "delivered" })

	// A paused destination holds the job (snoozed, no attempt spent, nothing
	// sent); resume releases it.
	out, err := runCLI(t, "destination", "pause", "twilio")
	require.NoError(t, err, out)
	held := s.send("pgb-2", "held through pgbouncer")
	s.waitFor("the job to be held", func() bool {
		var snoozed bool
		require.NoError(t, s.pool.QueryRow(s.ctx, `SELECT coalesce((metadata->>'snoozes')::int, 0) > 0 AND attempt = 0
			FROM switchboard.river_job WHERE kind = 'sms_send' AND args->>'message_id' = $1`, held).Scan(&snoozed))
		return snoozed
	})
	require.Len(t, s.box.Messages(), 1, "nothing sent while paused")
	out, err = runCLI(t, "destination", "resume", "twilio")
	require.NoError(t, err, out)
	s.waitFor("the held message to be delivered after resume", func() bool { return s.status(held) == "delivered" })

	// A permanent vendor error ends in a dead letter.
	s.box.InjectFaults(twiliosandbox.Fault{Status: 400, Code: 21408})
	dead := s.send("pgb-3", "dead letter through pgbouncer")
	s.waitFor("a dead letter", func() bool {
		var n int
		require.NoError(t, s.pool.QueryRow(s.ctx, `SELECT count(*) FROM switchboard.dead_letters d
			JOIN switchboard.messages m ON m.job_id = d.job_id WHERE m.id = $1::bigint`, dead).Scan(&n))
		return n == 1
	})

	// Events are read by polling by id (LISTEN needs a session).
	var delivered int
	require.NoError(t, s.pool.QueryRow(s.ctx, `SELECT count(*) FROM switchboard.events WHERE id > 0 AND kind = 'message.delivered'`).Scan(&delivered))
	require.Equal(t, 2, delivered)
}
