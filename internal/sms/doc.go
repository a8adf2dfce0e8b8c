// Package sms is Switchboard's messaging domain: the message state machine,
// the Sender interface that provider adapters (internal/twilio) implement,
// and the workers that send messages and apply provider status reports.
//
// # Sending
//
// SendWorker (kind sms_send) loads the message, honours cancellation,
// not_before and not_after, records an attempt and marks the message sending
// before the request leaves, and records the provider's id in the same
// transaction that completes the job. A job that finds an attempt without a
// known outcome asks the provider (Sender.FindSent) before it sends again:
// providers take no idempotency key, so a blind resend could text a patient
// twice.
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
