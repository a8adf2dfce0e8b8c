package jobs_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

type counts struct{ messages, jobs, events int }

func count(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) counts {
	t.Helper()
	var c counts
	err := q.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM switchboard.messages),
		(SELECT count(*) FROM switchboard.river_job),
		(SELECT count(*) FROM switchboard.events)`).Scan(&c.messages, &c.jobs, &c.events)
	require.NoError(t, err)
	return c
}

func validParams(key string) jobs.SendSMSParams {
	return jobs.SendSMSParams{IdempotencyKey: key, To: "+15005550006", Body: "Your appointment is tomorrow at 9:00."}
}

func TestSendSMSTransactional(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	t.Run("RollbackLeavesNothing", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "CREATE TEMP TABLE appointments (id int)")
		require.NoError(t, err)
		id, err := jobs.SendSMS(ctx, tx, validParams("rollback-1"))
		require.NoError(t, err)
		require.Positive(t, id)
		require.Equal(t, counts{1, 1, 0}, count(t, tx), "visible inside the transaction")
		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, counts{0, 0, 0}, count(t, pool))
	})

	t.Run("CommitKeepsBothWithTheJobPointingAtTheMessage", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		id, err := jobs.SendSMS(ctx, tx, validParams("commit-1"))
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		var kind, queue, state string
		var maxAttempts, priority int
		var msgID int64
		err = pool.QueryRow(ctx, `SELECT j.kind, j.queue, j.state, j.max_attempts, j.priority, (j.args->>'message_id')::bigint
			FROM switchboard.messages m JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, id).
			Scan(&kind, &queue, &state, &maxAttempts, &priority, &msgID)
		require.NoError(t, err)
		require.Equal(t, "sms_send", kind)
		require.Equal(t, "available", state)
		require.Equal(t, id, msgID)
		opts := jobs.SMSSendArgs{}.InsertOpts()
		require.Equal(t, opts.Queue, queue)
		require.Equal(t, opts.MaxAttempts, maxAttempts)
		require.Equal(t, opts.Priority, priority)
	})
}

func TestSendSMSWakesRiverOnItsLiteralChannel(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `LISTEN "switchboard.river_insert"`)
	require.NoError(t, err)

	// An app session with its own search_path must still wake River.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SET LOCAL search_path = public")
	require.NoError(t, err)
	_, err = jobs.SendSMS(ctx, tx, validParams("notify-1"))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, "switchboard.river_insert", n.Channel)
	require.JSONEq(t, `{"queue":"sms"}`, n.Payload)
}

func TestSendSMSIdempotency(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	send := func(p jobs.SendSMSParams) (int64, error) {
		var id int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.SendSMS(ctx, tx, p)
			return err
		})
		return id, err
	}

	notAfter := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	p := validParams("idem-1")
	p.NotAfter = notAfter
	first, err := send(p)
	require.NoError(t, err)

	t.Run("SameKeySameContentSameIDOneJob", func(t *testing.T) {
		// The same instant in another zone is the same content.
		again := p
		again.NotAfter = notAfter.In(time.FixedZone("X", 5*3600))
		second, err := send(again)
		require.NoError(t, err)
		require.Equal(t, first, second)
		var jobsN int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.river_job WHERE args->>'message_id' = $1", strconv.FormatInt(first, 10)).Scan(&jobsN))
		require.Equal(t, 1, jobsN)
	})

	t.Run("SameKeyOtherContentIs23505", func(t *testing.T) {
		for name, mutate := range map[string]func(*jobs.SendSMSParams){
			"body":        func(p *jobs.SendSMSParams) { p.Body = "other" },
			"to":          func(p *jobs.SendSMSParams) { p.To = "+15005550007" },
			"not_after":   func(p *jobs.SendSMSParams) { p.NotAfter = p.NotAfter.Add(time.Second) },
			"patient_ref": func(p *jobs.SendSMSParams) { p.PatientRef = "patient-9" },
			"time_zone":   func(p *jobs.SendSMSParams) { p.TimeZone = "Europe/Berlin" },
		} {
			other := p
			mutate(&other)
			_, err := send(other)
			require.ErrorIs(t, err, jobs.ErrIdempotencyConflict, name)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "23505", pgErr.Code)
		}
	})
}

func TestSendSMSRejectsBadInputAndWritesNothing(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	long := make([]byte, 1601)
	for i := range long {
		long[i] = 'a'
	}
	now := time.Now()
	cases := []struct {
		name   string
		mutate func(*jobs.SendSMSParams)
		field  string
	}{
		{"MissingKey", func(p *jobs.SendSMSParams) { p.IdempotencyKey = "" }, "idempotency_key"},
		{"MissingTo", func(p *jobs.SendSMSParams) { p.To = "" }, "to_e164"},
		{"ToWithoutPlus", func(p *jobs.SendSMSParams) { p.To = "15005550006" }, "to_e164"},
		{"ToTooShort", func(p *jobs.SendSMSParams) { p.To = "+12345" }, "to_e164"},
		{"ToTooLong", func(p *jobs.SendSMSParams) { p.To = "+1234567890123456" }, "to_e164"},
		{"ToWithLetters", func(p *jobs.SendSMSParams) { p.To = "+1500555000a" }, "to_e164"},
		{"EmptyBody", func(p *jobs.SendSMSParams) { p.Body = "" }, "body"},
		{"BodyTooLong", func(p *jobs.SendSMSParams) { p.Body = string(long) }, "body"},
		{"BodyOnlySpaces", func(p *jobs.SendSMSParams) { p.Body = "   " }, "body"},
		{"BodyOnlyWhiteSpace", func(p *jobs.SendSMSParams) { p.Body = " \t\r\n \v\f" }, "body"},
		{"NotAfterBeforeNotBefore", func(p *jobs.SendSMSParams) {
			p.NotBefore = now.Add(2 * time.Hour)
			p.NotAfter = now.Add(time.Hour)
		}, "not_after"},
		{"NotAfterInThePast", func(p *jobs.SendSMSParams) { p.NotAfter = now.Add(-time.Minute) }, "not_after"},
		{"UnknownTimeZone", func(p *jobs.SendSMSParams) { p.TimeZone = "Mars/Olympus_Mons" }, "time_zone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validParams("bad-" + tc.name)
			tc.mutate(&p)
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := jobs.SendSMS(ctx, tx, p)
				return err
			})
			require.ErrorIs(t, err, jobs.ErrInvalidInput)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "22023", pgErr.Code)
			require.Contains(t, pgErr.Message, tc.field)
		})
	}

	t.Run("NullArgumentsRaiseInsteadOfReturningNull", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT switchboard.send_sms(NULL, '+15005550006', 'hi')",
			"SELECT switchboard.send_sms('k', NULL, 'hi')",
			"SELECT switchboard.send_sms('k', '+15005550006', NULL)",
			"SELECT switchboard.cancel_sms(NULL)",
			"SELECT switchboard.enqueue(NULL, '{}')",
		} {
			_, err := pool.Exec(ctx, sql)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, sql)
			require.Equal(t, "22023", pgErr.Code, sql)
		}
	})

	require.Equal(t, counts{0, 0, 0}, count(t, pool))
}

func TestCancelSMS(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(ctx, tx, validParams("cancel-1"))
		return err
	}))

	t.Run("QueuedMessageIsCancelledWithItsJobAndNoDeadLetter", func(t *testing.T) {
		var ok bool
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			ok, err = jobs.CancelSMS(ctx, tx, id)
			return err
		}))
		require.True(t, ok)
		var status, jobState string
		var deadLetters, events int
		require.NoError(t, pool.QueryRow(ctx, `SELECT m.status, j.state,
			(SELECT count(*) FROM switchboard.dead_letters),
			(SELECT count(*) FROM switchboard.events WHERE kind = 'message.cancelled' AND subject = 'message/' || m.id)
			FROM switchboard.messages m JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, id).
			Scan(&status, &jobState, &deadLetters, &events))
		require.Equal(t, "cancelled", status)
		require.Equal(t, "cancelled", jobState)
		require.Zero(t, deadLetters)
		require.Equal(t, 1, events)
	})

	t.Run("SecondCancelAnswersFalseAndEmitsNothing", func(t *testing.T) {
		var ok bool
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			ok, err = jobs.CancelSMS(ctx, tx, id)
			return err
		}))
		require.False(t, ok, "true only when this call cancelled")
		var events int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.events WHERE kind = 'message.cancelled' AND subject = 'message/' || $1::bigint`, id).Scan(&events))
		require.Equal(t, 1, events)
	})

	t.Run("MessageHandedToProviderIsNotCancelled", func(t *testing.T) {
		var other int64
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			other, err = jobs.SendSMS(ctx, tx, validParams("cancel-2"))
			return err
		}))
		_, err := pool.Exec(ctx, "UPDATE switchboard.messages SET status = 'sending', provider = 'twilio' WHERE id = $1", other)
		require.NoError(t, err)
		var ok bool
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			ok, err = jobs.CancelSMS(ctx, tx, other)
			return err
		}))
		require.False(t, ok)
	})

	t.Run("UnknownIDIsInvalidInput", func(t *testing.T) {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := jobs.CancelSMS(ctx, tx, 999999)
			return err
		})
		require.ErrorIs(t, err, jobs.ErrInvalidInput)
		require.Contains(t, err.Error(), "message_id")
	})
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, app_enqueue, description)
		VALUES ('test_echo', 'maintenance', 3, 4, true, 'test kind')`)
	require.NoError(t, err)

	t.Run("UsesKindDefaults", func(t *testing.T) {
		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			id, err = jobs.Enqueue(ctx, tx, "test_echo", map[string]any{"n": 1}, nil)
			return err
		}))
		var queue, state string
		var prio, maxAttempts int
		require.NoError(t, pool.QueryRow(ctx, "SELECT queue, priority, max_attempts, state FROM switchboard.river_job WHERE id = $1", id).
			Scan(&queue, &prio, &maxAttempts, &state))
		require.Equal(t, []any{"maintenance", 3, 4, "available"}, []any{queue, prio, maxAttempts, state})
	})

	t.Run("ScheduledInTheFuture", func(t *testing.T) {
		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			id, err = jobs.Enqueue(ctx, tx, "test_echo", map[string]any{}, &jobs.EnqueueOpts{ScheduledAt: time.Now().Add(time.Hour)})
			return err
		}))
		var state string
		require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM switchboard.river_job WHERE id = $1", id).Scan(&state))
		require.Equal(t, "scheduled", state)
	})

	t.Run("RejectsInternalAndUnknownKindsAndNonObjects", func(t *testing.T) {
		for _, tc := range []struct {
			kind string
			args any
		}{{"sms_send", map[string]any{"message_id": 1}}, {"no_such_kind", map[string]any{}}, {"test_echo", []int{1}}} {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := jobs.Enqueue(ctx, tx, tc.kind, tc.args, nil)
				return err
			})
			require.ErrorIs(t, err, jobs.ErrInvalidInput, tc.kind)
		}
	})
}

func TestAppRole(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()

	asApp := func(fn func(tx pgx.Tx) error) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE switchboard_app"); err != nil {
				return err
			}
			return fn(tx)
		})
	}

	t.Run("CanCallTheAPIAndReadEvents", func(t *testing.T) {
		require.NoError(t, asApp(func(tx pgx.Tx) error {
			id, err := jobs.SendSMS(ctx, tx, validParams("role-1"))
			if err != nil {
				return err
			}
			if _, err := jobs.CancelSMS(ctx, tx, id); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "SELECT id, kind, subject FROM switchboard.events")
			return err
		}))
	})

	for _, sql := range []string{
		"SELECT * FROM switchboard.river_job",
		"INSERT INTO switchboard.river_job (kind, args) VALUES ('sms_send', '{}')",
		"SELECT * FROM switchboard.messages",
		"UPDATE switchboard.messages SET status = 'delivered'",
		"SELECT switchboard.insert_job('sms_send', '{}')",
		"SELECT switchboard.dlq_retry('{1}', 'me')",
	} {
		t.Run("Denied/"+sql, func(t *testing.T) {
			err := asApp(func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err })
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "42501", pgErr.Code, "insufficient_privilege")
		})
	}
}

// TestInsertOptsMatchJobKinds keeps every Go kind's InsertOpts equal to its
// switchboard.job_kinds row, the single source of truth.
func TestInsertOptsMatchJobKinds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	for _, args := range []kindWithOpts{jobs.SMSSendArgs{}, jobs.WebhookProcessArgs{}, jobs.DestinationProbeArgs{}, jobs.MaintenanceArgs{}, jobs.SMSReconcileArgs{}} {
		t.Run(args.Kind(), func(t *testing.T) {
			checkKind(t, pool, args)
		})
	}
}

type kindWithOpts interface {
	river.JobArgs
	river.JobArgsWithInsertOpts
}

func checkKind(t *testing.T, pool *pgxpool.Pool, args kindWithOpts) {
	var queue string
	var prio, maxAttempts int
	err := pool.QueryRow(context.Background(), "SELECT queue, priority, max_attempts FROM switchboard.job_kinds WHERE kind = $1", args.Kind()).
		Scan(&queue, &prio, &maxAttempts)
	if errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("kind %s has no job_kinds row", args.Kind())
	}
	require.NoError(t, err)
	opts := args.InsertOpts()
	require.Equal(t, queue, opts.Queue)
	require.Equal(t, prio, opts.Priority)
	require.Equal(t, maxAttempts, opts.MaxAttempts)
}
