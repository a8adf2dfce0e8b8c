// Package jobs is the catalogue of Switchboard's job kinds and the typed Go
// calls of its SQL API. It imports River, pgx and the standard library only,
// so any Go service can enqueue without linking vendor code.
//
// Every call takes the caller's pgx.Tx: the domain row and its job commit
// together or not at all.
//
// # Kinds
//
// Kinds are persisted and never renamed. Queue, priority and max attempts
// live in switchboard.job_kinds; each args type's InsertOpts mirrors its row
// (a test keeps them equal).
//
// sms_send (queue sms, 10 attempts). Sends one message. Completes when the
// provider accepted the message (its id is stored with the completion) or the
// message ended: cancelled, expired, or refused for the recipient (invalid
// number, opted out — final status, no dead letter). Snoozes on 429 until the
// provider's Retry-After, spending no attempt. Retries with backoff when the
// request certainly did not reach the provider, and after an ambiguous
// failure (timeout, 5xx): the next run asks the provider whether it accepted
// the message and adopts it instead of sending again. Cancels into a dead
// letter on our own permanent errors (credentials, sender, account); the
// operator fixes the configuration and runs `switchboard dlq retry ID`.
//
// webhook_process (queue inbound, 10 attempts). Applies one stored provider
// webhook (a Twilio status callback) to its message: records the report in
// message_events and moves the status forward only. Retries on database
// errors; a webhook that cannot be parsed is marked ignored, not retried.
// When it keeps failing, look at the inbound_webhooks row named by the dead
// letter's subject.
package jobs
