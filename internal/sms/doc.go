// Package sms is Switchboard's messaging domain: the message state machine,
// the Sender interface that provider adapters (internal/twilio) implement,
// and the workers that send messages and apply provider status reports.
//
// # Sending
//
// SendWorker (kind sms_send) loads the message, honours cancellation,
// not_before and not_after, records an attempt before the request leaves,
// and records the provider's id (the message becomes sending) before the
// job completes. A job that finds an attempt without a known outcome asks
// the provider (Sender.FindSent) before it sends again: providers take no
// idempotency key, so a blind resend could text a patient twice; and
// cancel_sms refuses a message with such an attempt.
//
// # Shared transactions
//
// Concurrently running sms_send jobs share their transactions (group
// commit, SMS_BATCH_SIZE): one transaction claims the messages of every job
// that reached it (locks them in id order, decides about each exactly as a
// job alone would, records the attempts of those to be sent), and one
// records what the providers accepted. Work returns only after its result
// committed; River completes the job after that. A job whose completion is
// lost runs again, finds the provider id and completes without a call; a
// lost result transaction leaves the attempts unresolved, and each job's
// next run reconciles with its provider before sending — the same path as a
// crash between the request and the commit. Anything off the common path
// (a message to reconcile, a failure, failover, a message to end) is
// decided by the job alone, in transactions of its own.
//
// # Outcomes
//
// Each provider adapter classifies its failures once into a *SendError
// (DESIGN.md "Outcomes"): recipient errors end the message without a dead
// letter, permanent errors cancel the job into a dead letter, throttling
// snoozes without spending an attempt, and ambiguous failures are reconciled.
//
// # Status
//
// Status reports only move a message forward along
// queued → sending → sent → delivered, or to a final undelivered, failed,
// blocked_opted_out, expired or cancelled.
package sms
