// Package jobs is the catalogue of Switchboard's 15 job kinds and the typed
// Go calls of its SQL API: what other Go services import, the way River's
// rivertype serves River's users. Every typed call has a runnable example
// (example_test.go, against a real database). It imports River, pgx and the standard library only,
// so any Go service can enqueue without linking vendor code.
//
// Every call takes the caller's pgx.Tx: the domain row and its job commit
// together or not at all.
//
// Kinds are persisted and never renamed. Queue, priority, max attempts, the
// destination a kind calls and how long it may wait for an unavailable
// destination live in switchboard.job_kinds; each args type's InsertOpts
// mirrors its row (a test keeps them equal).
//
// # Enqueue
//
// Each kind is inserted by its own SQL function (send_sms, upsert_patient,
// record_observation, push_fhir, …; the typed calls below), by a trigger,
// or by the workers themselves (periodic kinds, webhooks). The generic
// switchboard.enqueue (Enqueue) accepts only kinds whose
// job_kinds.app_enqueue is true, and no shipped kind sets it: every kind
// needs its domain row written in the same transaction, which only its own
// function does. It is the extension point for a kind added later whose
// args are all it needs.
//
// Outcomes common to every kind that calls a vendor (internal/resilience):
// a 429 snoozes until the vendor's reset (at most an hour,
// resilience.MaxThrottleWait); an open breaker or a paused
// destination snoozes until it may be called again, with jitter — snoozes
// spend no attempt — and after job_kinds.unavailable_limit of waiting the job
// becomes a dead letter of class unavailable; our own permanent errors cancel
// into a dead letter with the vendor's code. Dead letters of class
// unavailable or retries_exhausted are requeued in bulk once the destination
// is healthy: `switchboard dlq retry --kind K --class unavailable --since 2h`
// (automatically, for kinds with job_kinds.auto_requeue).
//
// # sms_send
//
// Queue sms, priority 2, 10 attempts, timeout SMS_SEND_TIMEOUT (60 s),
// retries after 5 s, 15 s, 30 s, 1 m, 2 m, 5 m, 10 m, 15 m, then 20 m (about
// an hour in all); waits for an unavailable provider up to 2 h.
// Sends one message through the providers in SMS_PROVIDERS order. Completes
// when a provider accepted the message (its id is stored in the same
// transaction), or when the message ended: cancelled, expired, invalid
// number, opted out (final status and an event, no dead letter). Fails over
// to the next provider only when the first provably did not accept the
// message (connection refused, breaker open, paused, our configuration
// rejected). Snoozes for not_before, quiet hours, its sender's rate-limit
// slot, a 429, or unavailable providers. After an ambiguous failure (timeout
// or 5xx after the request left) the next run asks that provider whether it
// accepted the message and adopts it instead of sending again.
// Runbook: a dead letter of class permanent names the vendor code — fix the
// credentials or sender, then `switchboard dlq retry ID`.
//
// # sms_reconcile
//
// Queue sms, priority 3, 3 attempts, every SMS_RECONCILE_INTERVAL (5 m).
// Looks up, at the provider, accepted messages with no final status
// SMS_RECONCILE_AFTER (30 m) after acceptance and applies what it finds, so a
// lost callback never leaves a message unknown. Skips unavailable providers
// for the run. Runbook: repeated failures mean the provider's API is down
// (see `switchboard destination list`).
//
// # webhook_process
//
// Queue inbound, priority 2, 10 attempts, 30 s, retries every 2 s growing
// to 1 m. Applies one stored provider webhook: a status report (recorded in
// message_events; moves the message forward only) or an inbound SMS
// (STOP/START change consent for every provider, HELP is answered, other
// replies are stored, announced as sms.inbound and auto-answered once per
// window). A report that arrives before the send recorded the provider id
// snoozes for up to 15 minutes; an unparsable webhook is marked ignored, not
// retried. Runbook: look at the inbound_webhooks row named by the dead
// letter's subject.
//
// # destination_probe
//
// Queue maintenance, priority 4, 3 attempts, every PROBE_INTERVAL (1 m).
// Probes every destination idle for PROBE_IDLE (a cheap authenticated read)
// through its policies, so destination_health and the breakers stay current
// without traffic. Failures are recorded, not retried.
//
// # maintenance
//
// Queue maintenance, priority 4, 3 attempts, every MAINTENANCE_INTERVAL
// (5 m). Erases message bodies RETENTION_MESSAGE_BODY after they ended and
// raw webhook and inbound bodies after RETENTION_WEBHOOK_BODY (rows, statuses
// and audit entries stay), removes idle rate-limiter keys, and requeues
// outage dead letters of auto_requeue kinds whose destination is healthy.
//
// # fhir_push
//
// Queue fhir, 12 attempts. Pushes one local entity — a patient, observation,
// device, sent message (Communication), SMS consent (Consent) or an app-built
// resource (push_fhir) — to one EHR endpoint. Inserted by upsert_patient,
// record_observation, record_blood_pressure, push_fhir and by triggers on
// messages and sms_consent, at most one waiting job per (endpoint, entity);
// both halves of a blood pressure reading queue the push of its systolic
// observation, which sends the reading as one 85354-9 panel (a half whose
// other half is not recorded yet is retried, never sent alone). Maps the current row,
// validates it (an invalid resource cancels into a dead letter with the
// reason and is never sent), then writes it with a conditional create or
// update on Switchboard's business identifier, version-aware (If-Match) once
// the resource is linked; an unchanged entity is not sent again. A patient is
// pushed before anything that refers to it. Holds (snoozes, no attempt
// spent, hold_reason in its metadata) on 429 (throttled, Retry-After, at
// most an hour), on the endpoint's rate limit (rate_slot), while the endpoint
// is disabled (endpoint_disabled) and while its breaker is open (dead letter of class
// unavailable after 24 h). Retries network errors and 5xx; re-reads and
// re-applies on 409/412 (bounded). Cancels into a dead letter on
// 400/403/404/405/410/422 (the OperationOutcome's codes are in the error), on
// a 412 of a conditional write (several resources on the EHR carry our
// identifier: the operator merges them on the EHR, then runs `switchboard dlq
// retry ID`), and on rejected credentials.
//
// # fhir_pull
//
// Queue fhir, 10 attempts. Pulls one resource type from one endpoint: a
// _lastUpdated search from the stored cursor minus an overlap window,
// following next links on the endpoint's origin only. Each resource version
// is stored once in fhir_inbound; Switchboard's own writes (meta.tag) are
// skipped; resources are matched to patients by identifier only and unmatched
// ones held for review; matched Patients and Observations are mapped into
// patients/observations and announced with an ehr.data_pulled event. Enqueued
// by fhir_pull_schedule and by rest-hook notifications. Same snooze and retry
// rules as fhir_push; 401 after a token refresh and 403 cancel into a dead
// letter.
//
// # fhir_pull_schedule
//
// Queue maintenance, 3 attempts, periodic. Enqueues a fhir_pull for every
// enabled endpoint and pull type whose interval has passed. Harmless to lose
// a run: the next one catches up.
//
// # wearable_sync
//
// Queue wearables, 6 attempts, destination google_health. Pulls one data type
// of one device connection for one time window from the Google Health API,
// following pages, and stores each data point once (unique per source); valid
// new or changed observations enqueue fhir_push in the same transaction.
// Unique by args per minute, so a burst of notifications for the same window
// is one job. Snoozes (no attempt spent) when the per-user limit (300/min,
// key google_health:<healthUserId>) is used up, on 429, and while the
// google_health breaker is open; the job's hold_reason (rate_limit, throttled,
// breaker_open …) says which. A dead refresh token (invalid_grant) or a
// revoked access completes the job and moves the connection to needs_reauth
// with one re-connect SMS; a scope the patient did not grant disables that
// data type. Retries 5xx and network errors; our own bad request (400, 404)
// is a dead letter: check the data type and filter.
//
// # wearable_backfill
//
// Queue wearables, 5 attempts. After a consent (or a re-consent), enqueues
// chunked wearable_sync jobs from each data type's cursor (or
// WEARABLES_BACKFILL_DAYS back), spaced to respect the per-user limit.
// Retries on database errors only.
//
// # wearable_notification
//
// Queue wearables, 10 attempts. Turns one stored Google Health notification
// (switchboard.inbound_webhooks) into wearable_sync jobs for the windows it
// names (DELETE: a sync that marks points gone from the window
// entered-in-error). A notification for an unknown user or type is marked
// ignored.
//
// # wearable_summarize
//
// Queue wearables, 5 attempts. Folds the raw high-frequency samples (heart
// rate) of closed periods into one summary observation per period (mean, min,
// max, count), pushed like any other.
//
// # wearable_poll
//
// Queue wearables, 3 attempts, periodic. Safety net: enqueues syncs of the
// last days of every active connection, retries connections in error after
// their backoff, and flags connections without data for WEARABLES_STALE_AFTER
// (event device.stale, metric switchboard_wearables_stale_connections) once.
//
// # wearable_revoke
//
// Queue wearables, 8 attempts, destination google_health. Revokes a
// disconnected connection's token at Google, then erases it.
//
// # apple_health_ingest
//
// Queue wearables, 10 attempts. Turns one accepted Apple Health upload into
// observations and entered-in-error corrections. Retries on database errors;
// the upload's samples are already stored, so nothing is lost while it waits.
package jobs
