// Package api is `switchboard api`: the HTTP server that receives vendor
// callbacks and serves the operator's River UI.
//
// # Webhooks
//
// Every callback route follows one shape (webhook.go): read the body
// with a size limit (413 over it), verify the vendor's signature over the raw
// bytes (403, nothing stored), parse the event (400, nothing stored), then
// in one transaction insert the switchboard.inbound_webhooks row and its
// webhook_process job, and answer 200 at once. Processing is asynchronous. A
// replay of a stored event (same provider and provider event id) inserts
// nothing and still answers 200; a database error answers 500 so the vendor
// retries.
//
// Routes:
//
//   - POST /webhooks/twilio/status: Twilio status callbacks, signed with the
//     Twilio auth token over PUBLIC_BASE_URL + the path and query as
//     received (never the Host header). The event id is
//     MessageSid:MessageStatus.
//
// # Operator routes
//
// /riverui/ serves River UI on the switchboard schema behind HTTP Basic auth
// (OPERATOR_USERNAME, bcrypt OPERATOR_PASSWORD_HASH). Missing or wrong
// credentials answer 401; when no credentials are configured operator routes
// answer 503 and are never open.
//
// # Probes and metrics
//
// /healthz, /readyz and /metrics come from httpserver.Probes. The counter
// switchboard_webhooks_total{provider, route, result} counts callbacks by
// result: accepted, duplicate, bad_signature, malformed, too_large, error.
package api
