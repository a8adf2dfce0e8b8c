package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Kinds of the wearables integration.
//
// Catalogue text for jobs/doc.go:
//
// wearable_sync (queue wearables, 6 attempts, destination google_health).
// Pulls one data type of one device connection for one time window from the
// Google Health API, following pages, and stores each data point once
// (unique per source); valid new or changed observations enqueue fhir_push in
// the same transaction. Unique by args per minute, so a burst of
// notifications for the same window is one job. Snoozes (no attempt spent)
// when the per-user limit (300/min, key google_health:<healthUserId>) is used
// up, on 429, and while the google_health breaker is open. A dead refresh
// token (invalid_grant) or a revoked access completes the job and moves the
// connection to needs_reauth with one re-connect SMS; a scope the patient did
// not grant disables that data type. Retries 5xx and network errors; our own
// bad request (400, 404) is a dead letter: check the data type and filter.
//
// wearable_backfill (queue wearables, 5 attempts). After a consent (or a
// re-consent), enqueues chunked wearable_sync jobs from each data type's
// cursor (or WEARABLES_BACKFILL_DAYS back), spaced to respect the per-user
// limit. Retries on database errors only.
//
// wearable_notification (queue wearables, 10 attempts). Turns one stored
// Google Health notification (switchboard.inbound_webhooks) into
// wearable_sync jobs for the windows it names (DELETE: a sync that marks
// points gone from the window entered-in-error). A notification for an
// unknown user or type is marked ignored.
//
// wearable_summarize (queue wearables, 5 attempts). Folds the raw
// high-frequency samples (heart rate) of closed periods into one summary
// observation per period (mean, min, max, count), pushed like any other.
//
// wearable_poll (queue wearables, 1 attempt, periodic). Safety net: enqueues
// syncs of the last days of every active connection, retries connections in
// error after their backoff, and flags connections without data for
// WEARABLES_STALE_AFTER (event device.stale, metric
// switchboard_wearables_stale_connections) once.
//
// wearable_revoke (queue wearables, 8 attempts, destination google_health).
// Revokes a disconnected connection's token at Google, then erases it.
//
// apple_health_ingest (queue wearables, 10 attempts). Turns one accepted
// Apple Health upload into observations and entered-in-error corrections.
// Retries on database errors; the upload's samples are already stored, so
// nothing is lost while it waits.
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
	return river.InsertOpts{Queue: QueueWearables, Priority: 4, MaxAttempts: 1}
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
