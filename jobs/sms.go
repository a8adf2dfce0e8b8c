package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// Kinds of the messaging integration.
const (
	KindSMSSend        = "sms_send"
	KindWebhookProcess = "webhook_process"
)

// SMSSendArgs are the args of sms_send: a message id, never the number or body.
type SMSSendArgs struct {
	MessageID int64 `json:"message_id"`
}

// Kind implements river.JobArgs.
func (SMSSendArgs) Kind() string { return KindSMSSend }

// InsertOpts mirrors the sms_send row of switchboard.job_kinds.
func (SMSSendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSMS, Priority: 2, MaxAttempts: 10}
}

// WebhookProcessArgs are the args of webhook_process: one inbound_webhooks row.
type WebhookProcessArgs struct {
	WebhookID int64 `json:"webhook_id"`
}

// Kind implements river.JobArgs.
func (WebhookProcessArgs) Kind() string { return KindWebhookProcess }

// InsertOpts mirrors the webhook_process row of switchboard.job_kinds.
func (WebhookProcessArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueInbound, Priority: 2, MaxAttempts: 10}
}

// SendSMSParams are the arguments of switchboard.send_sms.
type SendSMSParams struct {
	// IdempotencyKey makes the call safe to repeat: the same key and content
	// return the same message id without a second job.
	IdempotencyKey string
	To             string // +E.164
	Body           string // 1–1600 characters
	PatientRef     string // optional reference to the app's patient
	NotBefore      time.Time
	NotAfter       time.Time
	// TimeZone is the recipient's IANA time zone; with it the worker holds
	// the message past the configured quiet hours.
	TimeZone string
}

// SendSMS calls switchboard.send_sms on tx and returns the message id. Errors
// match ErrInvalidInput (a field missing or malformed; the message names it)
// or ErrIdempotencyConflict.
func SendSMS(ctx context.Context, tx pgx.Tx, p SendSMSParams) (int64, error) {
	var id int64
	if err := propagateTrace(ctx, tx); err != nil {
		return 0, err
	}
	err := tx.QueryRow(ctx, "SELECT switchboard.send_sms($1, $2, $3, $4, $5, $6, $7)",
		p.IdempotencyKey, p.To, p.Body, nullString(p.PatientRef), nullTime(p.NotBefore), nullTime(p.NotAfter), nullString(p.TimeZone)).Scan(&id)
	if err != nil {
		return 0, apiError("switchboard.send_sms", err)
	}
	return id, nil
}

// CancelSMS calls switchboard.cancel_sms on tx. It reports whether the
// call cancelled the message: false when it was already cancelled or
// handed to a provider.
// An unknown id is an error matching ErrInvalidInput.
func CancelSMS(ctx context.Context, tx pgx.Tx, messageID int64) (bool, error) {
	var ok bool
	if err := tx.QueryRow(ctx, "SELECT switchboard.cancel_sms($1)", messageID).Scan(&ok); err != nil {
		return false, apiError("switchboard.cancel_sms", err)
	}
	return ok, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullID is NULL for 0 (none), else id.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// KindSMSReconcile asks providers for the final status of accepted messages
// whose status callbacks never came (periodic).
const KindSMSReconcile = "sms_reconcile"

// SMSReconcileArgs are the args of sms_reconcile: none; each run takes a
// batch of the oldest unfinished messages.
type SMSReconcileArgs struct{}

// Kind implements river.JobArgs.
func (SMSReconcileArgs) Kind() string { return KindSMSReconcile }

// InsertOpts mirrors the sms_reconcile row of switchboard.job_kinds.
func (SMSReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSMS, Priority: 3, MaxAttempts: 3}
}
