package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Kinds of the wearables integration.
const (
	KindWearableSync         = "wearable_sync"
	KindWearableBackfill     = "wearable_backfill"
	KindWearableNotification = "wearable_notification"
	KindWearableSummarize    = "wearable_summarize"
	KindWearablePoll         = "wearable_poll"
	KindWearableRevoke       = "wearable_revoke"
	KindAppleHealthIngest    = "apple_health_ingest"
)

// uniqueWaiting dedupes jobs that have not finished: a job that completed
// does not stop a later one with the same args.
var uniqueWaiting = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// WearableSyncArgs are the args of wearable_sync: a connection, a Google
// data type id and a window [Start, End). Replace marks points of the window
// that the API no longer returns entered-in-error (DELETE notifications).
type WearableSyncArgs struct {
	ConnectionID int64     `json:"connection_id"`
	DataType     string    `json:"data_type"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	Replace      bool      `json:"replace,omitempty"`
}

// Kind implements river.JobArgs.
func (WearableSyncArgs) Kind() string { return KindWearableSync }

// InsertOpts mirrors the wearable_sync row of switchboard.job_kinds; unique
// by args per minute while waiting or running.
func (WearableSyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 3, MaxAttempts: 6,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute, ByState: uniqueWaiting}}
}

// WearableBackfillArgs are the args of wearable_backfill.
type WearableBackfillArgs struct {
	ConnectionID int64 `json:"connection_id"`
}

// Kind implements river.JobArgs.
func (WearableBackfillArgs) Kind() string { return KindWearableBackfill }

// InsertOpts mirrors the wearable_backfill row of switchboard.job_kinds.
func (WearableBackfillArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 4, MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute, ByState: uniqueWaiting}}
}

// WearableNotificationArgs are the args of wearable_notification: one inbox row.
type WearableNotificationArgs struct {
	WebhookID int64 `json:"webhook_id"`
}

// Kind implements river.JobArgs.
func (WearableNotificationArgs) Kind() string { return KindWearableNotification }

// InsertOpts mirrors the wearable_notification row of switchboard.job_kinds.
func (WearableNotificationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 2, MaxAttempts: 10}
}

// WearableSummarizeArgs are the args of wearable_summarize.
type WearableSummarizeArgs struct {
	ConnectionID int64 `json:"connection_id"`
}

// Kind implements river.JobArgs.
func (WearableSummarizeArgs) Kind() string { return KindWearableSummarize }

// InsertOpts mirrors the wearable_summarize row of switchboard.job_kinds.
func (WearableSummarizeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 4, MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute, ByState: uniqueWaiting}}
}

// WearablePollArgs are the args of wearable_poll: none.
type WearablePollArgs struct{}

// Kind implements river.JobArgs.
func (WearablePollArgs) Kind() string { return KindWearablePoll }

// InsertOpts mirrors the wearable_poll row of switchboard.job_kinds.
func (WearablePollArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 4, MaxAttempts: 3}
}

// WearableRevokeArgs are the args of wearable_revoke.
type WearableRevokeArgs struct {
	ConnectionID int64 `json:"connection_id"`
}

// Kind implements river.JobArgs.
func (WearableRevokeArgs) Kind() string { return KindWearableRevoke }

// InsertOpts mirrors the wearable_revoke row of switchboard.job_kinds.
func (WearableRevokeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 3, MaxAttempts: 8}
}

// AppleHealthIngestArgs are the args of apple_health_ingest: one upload.
type AppleHealthIngestArgs struct {
	UploadID     int64 `json:"upload_id"`
	ConnectionID int64 `json:"connection_id"`
}

// Kind implements river.JobArgs.
func (AppleHealthIngestArgs) Kind() string { return KindAppleHealthIngest }

// InsertOpts mirrors the apple_health_ingest row of switchboard.job_kinds.
func (AppleHealthIngestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueWearables, Priority: 2, MaxAttempts: 10}
}

// WearablesConnectLink calls switchboard.wearables_connect_link on tx: a
// token for <PUBLIC_BASE_URL>/oauth/google-health/start?link=<token> that
// lets one patient connect a Google account until ttl passes (zero: 30
// minutes). Errors match ErrInvalidInput (unknown patient, bad ttl).
func WearablesConnectLink(ctx context.Context, tx pgx.Tx, patientExternalRef string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = 30 * time.Minute
	}
	var tok string
	err := tx.QueryRow(ctx, "SELECT switchboard.wearables_connect_link($1, 'google_health', make_interval(secs => $2))",
		patientExternalRef, ttl.Seconds()).Scan(&tok)
	if err != nil {
		return "", apiError("switchboard.wearables_connect_link", err)
	}
	return tok, nil
}

// WearablesUploadToken calls switchboard.wearables_upload_token on tx: an
// Apple Health upload token for one patient (shown once; stored hashed).
// Errors match ErrInvalidInput (unknown patient).
func WearablesUploadToken(ctx context.Context, tx pgx.Tx, patientExternalRef string) (string, error) {
	var tok string
	if err := tx.QueryRow(ctx, "SELECT switchboard.wearables_upload_token($1)", patientExternalRef).Scan(&tok); err != nil {
		return "", apiError("switchboard.wearables_upload_token", err)
	}
	return tok, nil
}

// WearablesDisconnect calls switchboard.wearables_disconnect on tx. It
// reports false when the connection was already revoked; errors match
// ErrInvalidInput (unknown connection, missing actor).
func WearablesDisconnect(ctx context.Context, tx pgx.Tx, connectionID int64, actor string) (bool, error) {
	var ok bool
	if err := tx.QueryRow(ctx, "SELECT switchboard.wearables_disconnect($1, $2)", connectionID, actor).Scan(&ok); err != nil {
		return false, apiError("switchboard.wearables_disconnect", err)
	}
	return ok, nil
}
