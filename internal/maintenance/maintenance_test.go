package maintenance_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/maintenance"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
)

func TestMaintenance(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}

	// Two messages ended long ago and recently, one still open.
	for _, key := range []string{"old", "recent", "open"} {
		exec("SELECT switchboard.send_sms($1, '+14155550123', 'Your appointment is tomorrow.')", key)
	}
	exec("UPDATE switchboard.messages SET status = 'delivered', final_at = now() - interval '40 days' WHERE idempotency_key = 'old'")
	exec("UPDATE switchboard.messages SET status = 'delivered', final_at = now() - interval '1 day' WHERE idempotency_key = 'recent'")
	exec(`INSERT INTO switchboard.inbound_webhooks (provider, provider_event_id, event_type, raw_body, state, received_at) VALUES
		('twilio', 'a', 'message.status', 'x', 'processed', now() - interval '10 days'),
		('twilio', 'b', 'message.status', 'x', 'pending', now() - interval '10 days'),
		('twilio', 'c', 'message.status', 'x', 'processed', now())`)

	// An outage dead letter of a kind that opted into automatic requeue,
	// whose destination is healthy again; and one whose destination is not.
	exec("UPDATE switchboard.job_kinds SET auto_requeue = true WHERE kind = 'sms_send'")
	exec(`INSERT INTO switchboard.dead_letters (job_id, kind, queue, args, attempts, max_attempts, class, job_state) VALUES
		(1, 'sms_send', 'sms', '{"message_id": 3}', 1, 10, 'unavailable', 'cancelled'),
		(2, 'sms_send', 'sms', '{"message_id": 3}', 1, 10, 'permanent', 'cancelled')`)
	exec(`INSERT INTO switchboard.destination_health (destination, last_success_at, last_failure_at, breaker_state)
		VALUES ('twilio', now(), now() - interval '1 minute', 'closed')`)

	lim := ratelimit.New(pool)
	_, err := lim.Take(ctx, "twilio:idle", ratelimit.Limit{N: 1, Period: time.Second, Burst: 1})
	require.NoError(t, err)
	exec("UPDATE switchboard.rate_limits SET tat = now() - interval '2 hours'")

	cfg := maintenance.Config{MessageBodyRetention: 30 * 24 * time.Hour, WebhookBodyRetention: 7 * 24 * time.Hour, LimiterIdle: time.Hour}
	r, err := maintenance.Run(ctx, cfg, pool, lim)
	require.NoError(t, err)
	require.Equal(t, maintenance.Result{MessageBodies: 1, WebhookBodies: 1, LimiterKeys: 1, Requeued: 1}, r)

	require.Equal(t, 1, count("SELECT count(*) FROM switchboard.messages WHERE body IS NULL AND body_erased_at IS NOT NULL AND idempotency_key = 'old'"))
	require.Equal(t, 2, count("SELECT count(*) FROM switchboard.messages WHERE body IS NOT NULL"))
	require.Equal(t, 2, count("SELECT count(*) FROM switchboard.inbound_webhooks WHERE raw_body IS NOT NULL"), "pending and recent bodies stay")
	require.Equal(t, 1, count("SELECT count(*) FROM switchboard.dead_letters WHERE state = 'requeued' AND class = 'unavailable'"))
	require.Equal(t, 1, count("SELECT count(*) FROM switchboard.dead_letters WHERE state = 'open' AND class = 'permanent'"), "permanent causes wait for an operator")
	require.Equal(t, 1, count("SELECT count(*) FROM switchboard.audit_log WHERE actor = 'auto_requeue' AND action = 'dlq.retry'"))

	// A second run finds nothing more to do.
	r, err = maintenance.Run(ctx, cfg, pool, lim)
	require.NoError(t, err)
	require.Equal(t, maintenance.Result{}, r)
}
