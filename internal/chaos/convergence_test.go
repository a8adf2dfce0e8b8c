package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// Convergence counts every message open when a fault ended and measures
// it by the database's final_at (or its dead letter's time).
func TestConvergenceMeasuresFromFaultEnd(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	started := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return started.Add(time.Duration(s) * time.Second) }
	msg := func(key string, created time.Time, status string, final *time.Time, jobID int64) {
		t.Helper()
		_, err := pool.Exec(ctx, `
INSERT INTO switchboard.messages (idempotency_key, content_hash, to_e164, body, status, created_at, final_at, job_id)
VALUES ($1, sha256(convert_to($1, 'UTF8')), '+14155550123', 'x', $2, $3, $4, nullif($5, 0))`, key, status, created, final, jobID)
		require.NoError(t, err)
	}
	ptr := func(t time.Time) *time.Time { return &t }
	msg("chaos-c-000001", at(1), "delivered", ptr(at(2)), 0)   // final before the fault ended: not held up
	msg("chaos-c-000002", at(5), "delivered", ptr(at(14)), 0)  // 4 s after
	msg("chaos-c-000003", at(8), "delivered", ptr(at(40)), 0)  // 30 s after
	msg("chaos-c-000004", at(9), "queued", nil, 0)             // still open
	msg("chaos-c-000005", at(9), "queued", nil, 77)            // ended in a dead letter 10 s after
	msg("chaos-c-000006", at(20), "delivered", ptr(at(21)), 0) // created after the fault ended
	msg("chaos-other-000001", at(5), "queued", nil, 0)         // another run
	_, err := pool.Exec(ctx, `INSERT INTO switchboard.dead_letters (job_id, kind, queue, args, attempts, max_attempts, class, job_state, created_at)
VALUES (77, 'sms_send', 'sms', '{}', 1, 10, 'reconcile_undecided', 'discarded', $1)`, at(20))
	require.NoError(t, err)

	got, err := measureConvergence(ctx, pool, "chaos-c-", started, []Convergence{{Fault: "twilio outage", Ended: 10 * time.Second}})
	require.NoError(t, err)
	require.Equal(t, []Convergence{{Fault: "twilio outage", Ended: 10 * time.Second, HeldUp: 4, Open: 1, Max: 30 * time.Second, Median: 10 * time.Second}}, got)
	require.Contains(t, convergenceWord(got, Bound{Drain: 5 * time.Minute}), "NOT converged within the 5m0s drain")
}
