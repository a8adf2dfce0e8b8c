// Package twilio is the Twilio adapter of the sms domain: Client implements
// sms.Sender with the official SDK, github.com/twilio/twilio-go (only its
// v2010 API service is built).
//
// # Transport
//
// twilio-go hard-codes https://api.twilio.com, builds every request on
// context.Background() and hides the status and headers of failed
// responses. Each call therefore gets its own small SDK client whose
// RoundTripper points the request at Config.APIBaseURL (the sandbox and the
// tests use a local server), attaches the caller's context, records whether
// the request was fully written and records the response's status and
// Retry-After, before delegating to one shared, pooled transport.
//
// # Outcomes
//
// Every failure is classified once, by classify (classify.go), into a
// *sms.SendError whose class is one of DESIGN.md's outcomes:
//
//   - nothing written (refused, DNS, TLS): retryable;
//   - written, then a timeout, reset, cancellation or any 5xx: ambiguous
//     for a send, which must be reconciled with FindSent before a resend;
//     retryable for the idempotent list and fetch;
//   - 429/20429: throttled for Retry-After; 21611 and 30001 for a minute;
//   - recipient codes (21211, 21610, 21614, …): recipient, with a reason;
//   - anything else, our credentials and content included: permanent.
//
// Error texts hold statuses and codes, never a body, number or URL.
//
// # Configuration
//
// Config is read from TWILIO_* environment variables (go-envconfig tags);
// it redacts the auth token when printed or logged.
package twilio
