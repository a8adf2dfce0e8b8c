// Package jobs is the catalogue of Switchboard's job kinds and the typed Go
// calls of its SQL API. It imports River, pgx and the standard library only,
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
// Outcomes common to every kind that calls a vendor (internal/resilience):
// a 429 snoozes until the vendor's reset; an open breaker or a paused
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
// Queue maintenance, priority 4, 1 attempt, every PROBE_INTERVAL (1 m).
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
package jobs
