package sms

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

// A result transaction can commit after its run gave up (the batch has a
// context of its own). If a later run has settled the attempt meanwhile,
// that run's decision stands: the late result changes neither the attempt
// nor the message, and is logged.
func TestLateResultDoesNotOverrideALaterRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	var logs bytes.Buffer
	w := NewSendWorker(Config{}, pool, SendDeps{}, slog.New(slog.NewJSONHandler(&logs, nil)))

	var late, open int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if late, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "late", To: "+12015550101", Body: "b"}); err != nil {
			return err
		}
		open, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "open", To: "+12015550102", Body: "b"})
		return err
	}))
	var settledAttempt, openAttempt int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO switchboard.message_attempts (message_id, provider, outcome, finished_at)
		VALUES ($1, 'twilio', 'reconciled_absent', now()) RETURNING id`, late).Scan(&settledAttempt))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO switchboard.message_attempts (message_id, provider)
		VALUES ($1, 'twilio') RETURNING id`, open).Scan(&openAttempt))

	res, err := w.acceptBatch(ctx, []acceptReq{
		{attemptID: settledAttempt, messageID: late, run: fetched(t, pool, late), provider: "twilio", acc: Accepted{ProviderMessageID: "SMlate"}},
		{attemptID: openAttempt, messageID: open, run: fetched(t, pool, open), provider: "twilio", acc: Accepted{ProviderMessageID: "SMopen"}},
	})
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil}, res)

	outcome := func(id int64) string {
		var o string
		require.NoError(t, pool.QueryRow(ctx, "SELECT outcome FROM switchboard.message_attempts WHERE id = $1", id).Scan(&o))
		return o
	}
	sid := func(id int64) *string {
		var s *string
		require.NoError(t, pool.QueryRow(ctx, "SELECT provider_message_id FROM switchboard.messages WHERE id = $1", id).Scan(&s))
		return s
	}
	require.Equal(t, "reconciled_absent", outcome(settledAttempt), "the later run's settlement stands")
	require.Nil(t, sid(late))
	require.Equal(t, "accepted", outcome(openAttempt), "an open attempt takes its result")
	require.Equal(t, "SMopen", *sid(open))
	require.Contains(t, logs.String(), "after a later run settled its attempt")
	require.NotContains(t, logs.String(), "+12015550101", "no phone numbers in logs")
}

// fetched marks message id's job running at attempt 1, as River's fetch
// does, and returns that run.
func fetched(t *testing.T, pool *pgxpool.Pool, id int64) run {
	t.Helper()
	var r run
	require.NoError(t, pool.QueryRow(context.Background(), `
		UPDATE switchboard.river_job j SET state = 'running', attempt = 1, attempted_at = now()
		FROM switchboard.messages m WHERE m.id = $1 AND j.id = m.job_id RETURNING j.id, j.attempt`, id).Scan(&r.jobID, &r.attempt))
	return r
}

// Two acceptances of one message (two attempts both accepted: what the
// fence exists to prevent) never overwrite the first provider id: the
// message keeps the id of the copy it took first; the second attempt keeps
// its own id for an operator.
func TestSecondAcceptanceKeepsTheFirstProviderID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	w := NewSendWorker(Config{}, pool, SendDeps{}, slog.New(slog.DiscardHandler))
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "twice", To: "+12015550103", Body: "b"})
		return err
	}))
	r := fetched(t, pool, id)
	var first, second int64
	require.NoError(t, pool.QueryRow(ctx, "INSERT INTO switchboard.message_attempts (message_id, provider) VALUES ($1, 'twilio') RETURNING id", id).Scan(&first))
	require.NoError(t, pool.QueryRow(ctx, "INSERT INTO switchboard.message_attempts (message_id, provider) VALUES ($1, 'twilio') RETURNING id", id).Scan(&second))

	for _, a := range []struct {
		att int64
		sid string
	}{{first, "SMfirst"}, {second, "SMsecond"}} {
		_, err := w.acceptBatch(ctx, []acceptReq{{attemptID: a.att, messageID: id, run: r, provider: "twilio", acc: Accepted{ProviderMessageID: a.sid}}})
		require.NoError(t, err)
	}
	var sid string
	require.NoError(t, pool.QueryRow(ctx, "SELECT provider_message_id FROM switchboard.messages WHERE id = $1", id).Scan(&sid))
	require.Equal(t, "SMfirst", sid)
	var secondSID string
	require.NoError(t, pool.QueryRow(ctx, "SELECT provider_message_id FROM switchboard.message_attempts WHERE id = $1", second).Scan(&secondSID))
	require.Equal(t, "SMsecond", secondSID, "the second copy stays on record")
}

// acceptBatch answers each call in the order the calls came, though it
// locks the messages in id order: a lost run's errLostRun goes to that
// run, and the others' results stand.
func TestAcceptBatchAnswersEachCallInItsOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	w := NewSendWorker(Config{}, pool, SendDeps{}, slog.New(slog.DiscardHandler))
	var low, high int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if low, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "low", To: "+12015550103", Body: "b"}); err != nil {
			return err
		}
		high, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "high", To: "+12015550104", Body: "b"})
		return err
	}))
	require.Less(t, low, high)
	attempt := func(id int64) int64 {
		var a int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO switchboard.message_attempts (message_id, provider) VALUES ($1, 'twilio') RETURNING id`, id).Scan(&a))
		return a
	}
	lostRun := fetched(t, pool, high)
	lostRun.attempt++ // a run River no longer shows: rescued, and fetched again
	res, err := w.acceptBatch(ctx, []acceptReq{
		{attemptID: attempt(high), messageID: high, run: lostRun, provider: "twilio", acc: Accepted{ProviderMessageID: "SMhigh"}},
		{attemptID: attempt(low), messageID: low, run: fetched(t, pool, low), provider: "twilio", acc: Accepted{ProviderMessageID: "SMlow"}},
	})
	require.NoError(t, err)
	require.Equal(t, []error{errLostRun, nil}, res)
	var sid *string
	require.NoError(t, pool.QueryRow(ctx, "SELECT provider_message_id FROM switchboard.messages WHERE id = $1", low).Scan(&sid))
	require.Equal(t, "SMlow", *sid)
	require.NoError(t, pool.QueryRow(ctx, "SELECT provider_message_id FROM switchboard.messages WHERE id = $1", high).Scan(&sid))
	require.Nil(t, sid, "nothing written for the lost run")
}
