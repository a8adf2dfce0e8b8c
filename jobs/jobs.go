package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-health/switchboard/internal/telemetry"
)

// Queue names.
const (
	QueueSMS         = "sms"
	QueueInbound     = "inbound"
	QueueFHIR        = "fhir"
	QueueWearables   = "wearables"
	QueueMaintenance = "maintenance"
)

// ErrInvalidInput is matched (errors.Is) by SQL API errors with SQLSTATE
// 22023: a field was missing or malformed, and nothing was written.
var ErrInvalidInput = errors.New("invalid input")

// ErrIdempotencyConflict is matched (errors.Is) by SQL API errors with
// SQLSTATE 23505: the idempotency key was used before with other content.
var ErrIdempotencyConflict = errors.New("idempotency key reused with other content")

// APIError is an error raised by a switchboard.* SQL function. Message names
// the offending field.
type APIError struct {
	Code    string // SQLSTATE
	Message string
	Err     error
}

func (e *APIError) Error() string { return e.Message }
func (e *APIError) Unwrap() error { return e.Err }

// Is matches ErrInvalidInput and ErrIdempotencyConflict by SQLSTATE.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrInvalidInput:
		return e.Code == "22023"
	case ErrIdempotencyConflict:
		return e.Code == "23505"
	}
	return false
}

func apiError(fn string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "22023" || pgErr.Code == "23505") {
		return &APIError{Code: pgErr.Code, Message: fmt.Sprintf("%s: %s", fn, pgErr.Message), Err: err}
	}
	return fmt.Errorf("error calling %s: %w", fn, err)
}

// Enqueue inserts a job of an app-enqueueable kind through
// switchboard.enqueue, with the kind's defaults from job_kinds. It returns the
// job id, or an error matching ErrInvalidInput for an unknown kind or args
// that are not a JSON object.
func Enqueue(ctx context.Context, tx pgx.Tx, kind string, args any, opts *EnqueueOpts) (int64, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return 0, fmt.Errorf("error encoding args of %s: %w", kind, err)
	}
	var at any
	if opts != nil && !opts.ScheduledAt.IsZero() {
		at = opts.ScheduledAt
	}
	var id int64
	if err := propagateTrace(ctx, tx); err != nil {
		return 0, err
	}
	if err := tx.QueryRow(ctx, "SELECT switchboard.enqueue($1, $2::jsonb, $3)", kind, string(b), at).Scan(&id); err != nil {
		return 0, apiError("switchboard.enqueue", err)
	}
	return id, nil
}

// EnqueueOpts are optional settings of Enqueue.
type EnqueueOpts struct {
	// ScheduledAt delays the job; zero runs it now.
	ScheduledAt time.Time
}

// propagateTrace hands the span in ctx, if any, to the jobs the next SQL
// call inserts (migration 00091 copies switchboard.traceparent into their
// metadata), so one trace runs from the app's transaction to the vendor.
func propagateTrace(ctx context.Context, tx pgx.Tx) error {
	if err := telemetry.PropagateTx(ctx, tx); err != nil {
		return fmt.Errorf("error passing the trace context: %w", err)
	}
	return nil
}
