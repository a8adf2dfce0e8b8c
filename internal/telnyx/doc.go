// Package telnyx is the Telnyx adapter of the sms domain: Client implements
// sms.Sender and sms.ReportParser with a small net/http client of Telnyx's
// API v2 (the official Go SDK is not available to this module).
//
// # Endpoints
//
//	POST /v2/messages                   Send (never retried: no idempotency key)
//	GET  /v2/messages/{id}              Fetch, and FindSent's confirmation
//	GET  /v2/detail_records             FindSent's search (message detail records)
//	GET  /v2/messaging_profiles         Probe (page[size]=1)
//
// Every request carries Authorization: Bearer TELNYX_API_KEY, goes to
// Config.APIBaseURL (the sandbox and the tests use a local server) and is
// bounded by Config.RequestTimeout. A tracing hook records whether the
// request was fully written, which separates "certainly not accepted" from
// "may have been accepted".
//
// # Outcomes
//
// Every failure is classified once, by classify (classify.go), into a
// *sms.SendError whose class is one of DESIGN.md's outcomes:
//
//   - nothing written (refused, DNS, TLS): retryable;
//   - written, then a timeout, reset, cancellation, any 5xx, or Telnyx's
//     own 10007/10008: ambiguous for a send, which must be reconciled with
//     FindSent before a resend; retryable for the idempotent reads;
//   - 429/10011: throttled, for Retry-After-Ms, Retry-After or
//     x-ratelimit-reset; 40011 (carrier rate limit) for a minute;
//   - recipient codes (10002, 10016, 40001, 40012 about "/to"; 40300
//     opted out): recipient, with a reason;
//   - anything else, our credentials, sender and content included (401,
//     403, 10001, 10004, 10015, 40003 …): permanent.
//
// Telnyx error codes are strings ("10011"). Error texts hold statuses,
// codes and field pointers, never a body, number or URL.
//
// # Reconciliation
//
// Telnyx's Messaging API cannot list messages. When a send's answer was
// lost, FindSent searches message detail records for outbound messages to
// the recipient from our sender since the attempt, then fetches the newest
// candidates and adopts the one whose webhook_url is the message's status
// callback (it carries Switchboard's message id) or whose text is its
// body. Detail records may lag: an empty search is trusted only once
// Config.DetailRecordLag has passed since the attempt; before that FindSent
// answers throttled, and the job asks again later.
//
// # Webhooks
//
// Telnyx signs every webhook with the account's Ed25519 key: Verify checks
// the telnyx-signature-ed25519 header over telnyx-timestamp + "|" + the raw
// body and rejects timestamps more than five minutes away. ParseEvent reads
// the envelope (dedupe on Event.ID); ParseReport turns message.sent and
// message.finalized into sms.Report; ParseInbound reads message.received.
//
// # Configuration
//
// Config is read from TELNYX_* environment variables (go-envconfig tags);
// it redacts the API key when printed or logged.
package telnyx
