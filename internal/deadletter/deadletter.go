// Package deadletter is the operator's view of jobs that failed for good.
//
// Rows are written by a trigger on River's job table in the same transaction
// as River's state change (see migrations/00011_sql_api.sql), on every path:
// a final error, river.JobCancel, an unknown kind, args that do not decode,
// and the rescuer. They outlive River's job cleaner. Retry and purge run as
// SQL functions (switchboard.dlq_retry, switchboard.dlq_purge) so an operator
// role can act without table grants; every action lands in audit_log.
package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// ErrNotFound is returned by Show for an id that names no dead letter.
var ErrNotFound = errors.New("dead letter not found")

// States are a dead letter's states (the CHECK on switchboard.dead_letters.state).
func States() []string { return []string{"open", "requeued", "purged"} }

// Classes are the dead-letter classes (switchboard.dlq_retry_where checks
// the same list).
func Classes() []string {
	return []string{"permanent", "retries_exhausted", "unavailable", "unknown_kind", "undecodable_args"}
}

// Filter narrows List. Empty fields match everything.
type Filter struct {
	State string // open, requeued, purged
	Kind  string
	Class string    // RetryWhere only
	Since time.Time // RetryWhere only
	Limit int32
}

// List returns dead letters, newest first, and audits the look.
func List(ctx context.Context, pool *pgxpool.Pool, f Filter, actor string) ([]db.DeadLetterListRow, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	p := db.DeadLetterListParams{MaxRows: f.Limit}
	if f.State != "" {
		p.State = &f.State
	}
	if f.Kind != "" {
		p.Kind = &f.Kind
	}
	var rows []db.DeadLetterListRow
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		q := db.New()
		rows, err = q.DeadLetterList(ctx, tx, p)
		if err != nil {
			return fmt.Errorf("error listing dead letters: %w", err)
		}
		detail, _ := json.Marshal(map[string]any{"state": f.State, "kind": f.Kind, "rows": len(rows)})
		return audit(ctx, q, tx, actor, "dlq.list", "dead_letter", "*", detail)
	})
	return rows, err
}

// Show returns one dead letter with its args and errors, and audits the look.
// It returns ErrNotFound for an unknown id.
func Show(ctx context.Context, pool *pgxpool.Pool, id int64, actor string) (db.DeadLetter, error) {
	var dl db.DeadLetter
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := db.New()
		var err error
		dl, err = q.DeadLetterGet(ctx, tx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("error loading dead letter: %w", err)
		}
		return audit(ctx, q, tx, actor, "dlq.show", "dead_letter", strconv.FormatInt(id, 10), []byte(`{}`))
	})
	return dl, err
}

// Retry requeues open dead letters as fresh jobs and returns their ids. All
// or nothing: an unknown or not-open id fails the whole call.
func Retry(ctx context.Context, pool *pgxpool.Pool, ids []int64, actor string) ([]int64, error) {
	var out []int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		out, err = db.New().DeadLetterRetry(ctx, tx, db.DeadLetterRetryParams{Ids: ids, Actor: actor})
		return err
	})
	if err != nil {
		return nil, sqlError("retry", err)
	}
	return out, nil
}

// RetryWhere requeues every open dead letter matching f's Kind, Class and
// Since (at least one is required) and returns how many it requeued. Each is
// audited like Retry.
func RetryWhere(ctx context.Context, pool *pgxpool.Pool, f Filter, actor string) (int, error) {
	p := db.DeadLetterRetryWhereParams{Actor: actor}
	if f.Kind != "" {
		p.Kind = &f.Kind
	}
	if f.Class != "" {
		p.Class = &f.Class
	}
	if !f.Since.IsZero() {
		p.Since = &f.Since
	}
	var n int32
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		n, err = db.New().DeadLetterRetryWhere(ctx, tx, p)
		return err
	})
	if err != nil {
		return 0, sqlError("retry", err)
	}
	return int(n), nil
}

// Purge marks open dead letters purged. All or nothing, like Retry.
func Purge(ctx context.Context, pool *pgxpool.Pool, ids []int64, actor string) (int, error) {
	var n int32
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		n, err = db.New().DeadLetterPurge(ctx, tx, db.DeadLetterPurgeParams{Ids: ids, Actor: actor})
		return err
	})
	if err != nil {
		return 0, sqlError("purge", err)
	}
	return int(n), nil
}

func audit(ctx context.Context, q *db.Queries, tx pgx.Tx, actor, action, targetType, targetID string, detail []byte) error {
	if actor == "" {
		return errors.New("actor is required")
	}
	if err := q.AuditInsert(ctx, tx, db.AuditInsertParams{
		Actor: actor, Action: action, TargetType: targetType, TargetID: targetID, Detail: detail,
	}); err != nil {
		return fmt.Errorf("error writing audit log: %w", err)
	}
	return nil
}

func sqlError(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22023" {
		return fmt.Errorf("cannot %s: %s", op, pgErr.Message)
	}
	return fmt.Errorf("error during dead letter %s: %w", op, err)
}

// SettleHeldSMS is an operator's decision about an SMS held for an operator
// (event message.held; dead letter class reconcile_undecided): copy is the
// provider message id the operator found to be the message's copy — it is
// adopted and never sent again — or "" when the operator found none at the
// provider — it is sent. Either way its dead letter is retried (like Retry)
// and the returned job carries the decision out; the decision is audited.
// A message that is not held, or a copy that is another message's, is
// refused and nothing changes (switchboard.sms_settle_held, 00096).
func SettleHeldSMS(ctx context.Context, pool *pgxpool.Pool, messageID int64, copy, actor string) (int64, error) {
	p := db.MessageSettleHeldParams{MessageID: messageID, Actor: actor}
	if copy != "" {
		p.ProviderMessageID = &copy
	}
	job, err := db.New().MessageSettleHeld(ctx, pool, p)
	if err != nil {
		return 0, sqlError(fmt.Sprintf("settle message %d", messageID), err)
	}
	return job, nil
}
