package sms_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/deadletter"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/jobs"
)

// holdTwins makes two same-body messages whose copies Twilio created in one
// second, each with an ambiguous attempt, and lets the worker hold both for
// an operator, checking that nothing was resent. It returns the messages
// and their copies' SIDs.
func holdTwins(t *testing.T, d *direct) (ids [2]int64, sids [2]string) {
	t.Helper()
	for try := 0; ; try++ {
		require.Less(t, try, 10, "never managed two copies in one second")
		body := fmt.Sprintf("Reply YES to confirm (%d).", try)
		a, b := d.message(t, fmt.Sprintf("settle-a-%d", try), body), d.message(t, fmt.Sprintf("settle-b-%d", try), body)
		ca, cb := d.sendCopy(t, a, body), d.sendCopy(t, b, body)
		if ca.CreatedAt.Equal(cb.CreatedAt) {
			d.ambiguousAttemptAt(t, a, ca.CreatedAt)
			d.ambiguousAttemptAt(t, b, cb.CreatedAt)
			ids, sids = [2]int64{a, b}, [2]string{ca.SID, cb.SID}
			break
		}
		_, err := d.pool.Exec(context.Background(), "UPDATE switchboard.messages SET status = 'cancelled' WHERE id = ANY($1)", []int64{a, b})
		require.NoError(t, err)
	}
	creates := d.sandbox.CreateCalls()
	d.start(t)
	for _, id := range ids {
		d.waitJobState(t, id, "cancelled")
		require.Equal(t, []string{"held"}, d.outcomes(t, id))
	}
	require.Equal(t, creates, d.sandbox.CreateCalls(), "held, never resent")
	return ids, sids
}

func (d *direct) waitJobState(t *testing.T, id int64, state string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var s string
		require.NoError(t, d.pool.QueryRow(context.Background(),
			"SELECT j.state FROM switchboard.river_job j JOIN switchboard.messages m ON m.job_id = j.id WHERE m.id = $1", id).Scan(&s))
		return s == state
	}, 60*time.Second, 20*time.Millisecond, "job of message %d never %s", id, state)
}

func (d *direct) deadLetterOf(t *testing.T, id int64) int64 {
	t.Helper()
	var dl int64
	require.NoError(t, d.pool.QueryRow(context.Background(), `SELECT id FROM switchboard.dead_letters
		WHERE job_id = (SELECT job_id FROM switchboard.messages WHERE id = $1) AND state = 'open'`, id).Scan(&dl))
	return dl
}

// An operator settles held messages: naming one's copy adopts it (never
// sent again), and the other, retried like any dead letter, then decides
// by itself — the adopted copy is no longer a candidate. Before 00096 there
// was no way to settle one, and a retried sms_send dead letter could never
// send: the new job did not hold its message (the send fence).
func TestHeldMessagesAreSettledByAnOperator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDirect(t, sms.Config{InFlightGrace: time.Millisecond}, nil)
	ids, sids := holdTwins(t, d)
	creates := d.sandbox.CreateCalls()

	job, err := deadletter.SettleHeldSMS(ctx, d.pool, ids[0], sids[0], "oncall@example")
	require.NoError(t, err)
	require.Positive(t, job)
	d.waitJobState(t, ids[0], "completed")
	require.Equal(t, sids[0], d.sid(t, ids[0]))
	require.Equal(t, []string{"reconciled_found"}, d.outcomes(t, ids[0]))

	// The twin: a plain retry of its dead letter.
	_, err = deadletter.Retry(ctx, d.pool, []int64{d.deadLetterOf(t, ids[1])}, "oncall@example")
	require.NoError(t, err)
	d.waitJobState(t, ids[1], "completed")
	require.Equal(t, sids[1], d.sid(t, ids[1]), "the copy left is the twin's")
	require.Equal(t, []string{"reconciled_found"}, d.outcomes(t, ids[1]))
	require.Equal(t, creates, d.sandbox.CreateCalls(), "nothing was sent again")

	var audited, settled int
	require.NoError(t, d.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.audit_log WHERE action = 'sms.settle' AND actor = 'oncall@example'").Scan(&audited))
	require.NoError(t, d.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.settled' AND data->>'decision' = 'adopted'").Scan(&settled))
	require.Equal(t, 1, audited)
	require.Equal(t, 1, settled)
}

// The operator found no copy at the provider: the message is sent, once.
func TestHeldMessageWithNoCopyIsSentOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDirect(t, sms.Config{InFlightGrace: time.Millisecond}, nil)
	id := d.message(t, "no-copy", testBody)
	d.ambiguousAttempt(t, id, time.Second)
	for i := range 1001 { // a window too full to read: held, lookup_incomplete
		_, err := d.twilio.Send(ctx, sms.Outbound{To: testTo, Body: fmt.Sprintf("another message %d", i)})
		require.NoError(t, err)
	}
	d.start(t)
	d.waitJobState(t, id, "cancelled")
	require.Equal(t, []string{"held"}, d.outcomes(t, id))
	// The operator clears the line's backlog at the provider (here: the
	// window the look-up reads moves on) and finds no copy.
	_, err := d.pool.Exec(ctx, "UPDATE switchboard.message_attempts SET started_at = now() WHERE message_id = $1", id)
	require.NoError(t, err)
	creates := d.sandbox.CreateCalls()

	_, err = deadletter.SettleHeldSMS(ctx, d.pool, id, "", "oncall@example")
	require.NoError(t, err)
	d.waitJobState(t, id, "completed")
	require.NotEmpty(t, d.sid(t, id))
	require.Equal(t, []string{"reconciled_absent", "accepted"}, d.outcomes(t, id))
	require.Equal(t, creates+1, d.sandbox.CreateCalls(), "sent once")
}

// Bad decisions are refused with the field named, and change nothing.
func TestSettleHeldRefusesWhatIsNotHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDirect(t, sms.Config{InFlightGrace: time.Millisecond}, nil)
	ids, sids := holdTwins(t, d)
	plain := d.message(t, "not-held", testBody)

	// What a settling writes (the River client keeps working other jobs,
	// such as the plain message's, meanwhile).
	count := func() (n int) {
		require.NoError(t, d.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM switchboard.audit_log)
			+ (SELECT count(*) FROM switchboard.events WHERE kind = 'message.settled')
			+ (SELECT count(*) FROM switchboard.dead_letters WHERE state <> 'open')
			+ (SELECT count(*) FROM switchboard.message_attempts WHERE message_id = ANY($1) AND outcome <> 'held')`, ids[:]).Scan(&n))
		return n
	}
	before := count()
	for _, c := range []struct {
		name, copy, actor, want string
		id                      int64
	}{
		{"NoSuchMessage", "", "op", "message_id: message 999999 does not exist", 999999},
		{"NotHeld", "", "op", fmt.Sprintf("message_id: message %d is not held", plain), plain},
		{"AnotherMessagesCopy", sids[1], "op", "provider_message_id", ids[0]},
		{"NotAnID", "SM 1; DROP", "op", "provider_message_id must be", ids[0]},
		{"NoActor", "", " ", "actor is required", ids[0]},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "AnotherMessagesCopy" {
				// The twin's copy, adopted by the twin first.
				_, err := d.pool.Exec(ctx, "UPDATE switchboard.messages SET provider_message_id = $1 WHERE id = $2", sids[1], ids[1])
				require.NoError(t, err)
				before = count()
			}
			_, err := deadletter.SettleHeldSMS(ctx, d.pool, c.id, c.copy, c.actor)
			require.ErrorContains(t, err, c.want)
			require.Equal(t, before, count(), "nothing changed")
		})
	}
	require.Equal(t, []string{"held"}, d.outcomes(t, ids[0]))
}

// An app message inside the recipient's quiet hours is held, and says so
// where River UI shows it. The window is built around now, so the test
// holds at any time of day.
func TestQuietHoursHoldSaysWhy(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	q, err := sms.ParseQuietHours(now.Add(-time.Hour).Format("15:04") + "-" + now.Add(time.Hour).Format("15:04"))
	require.NoError(t, err)
	d := newDirect(t, sms.Config{QuietHours: q}, nil)
	var id int64
	require.NoError(t, pgx.BeginFunc(context.Background(), d.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(context.Background(), tx, jobs.SendSMSParams{IdempotencyKey: "quiet", To: testTo, Body: testBody, TimeZone: "UTC"})
		return err
	}))
	d.start(t)
	d.waitJobState(t, id, "scheduled")
	var reason string
	require.NoError(t, d.pool.QueryRow(context.Background(), `SELECT metadata->>'hold_reason' FROM switchboard.river_job
		WHERE id = (SELECT job_id FROM switchboard.messages WHERE id = $1)`, id).Scan(&reason))
	require.Equal(t, "quiet_hours", reason)
	require.Zero(t, d.sandbox.CreateCalls(), "not sent inside the window")
}
