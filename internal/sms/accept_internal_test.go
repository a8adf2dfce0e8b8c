package sms

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
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

	_, err := w.acceptBatch(ctx, []acceptReq{
		{attemptID: settledAttempt, messageID: late, provider: "twilio", acc: Accepted{ProviderMessageID: "SMlate"}},
		{attemptID: openAttempt, messageID: open, provider: "twilio", acc: Accepted{ProviderMessageID: "SMopen"}},
	})
	require.NoError(t, err)

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
