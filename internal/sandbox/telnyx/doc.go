// Package telnyxsandbox is a local server that answers like Telnyx's API v2
// for messaging, closely enough that internal/telnyx works against it.
// `switchboard dev` can run it in place of Telnyx, and tests point
// internal/telnyx at it with TELNYX_API_BASE_URL.
//
// # API
//
// Server answers, with Telnyx's JSON shapes and string error codes
// ({"errors":[{"code","title","detail","source":{"pointer"}}]}):
//
//	POST /v2/messages              create (200 {"data":{message}}, to[0].status queued)
//	GET  /v2/messages/{id}         fetch (404, code 10005, when unknown)
//	GET  /v2/detail_records        message detail records (record_type messaging)
//	GET  /v2/messaging_profiles    one profile (what the client's probe reads)
//
// Every request needs Authorization: Bearer with the configured API key
// (401, code 10009, otherwise). A create checks to (10004 missing, 10016 not
// starting with +, 10002 invalid), from or messaging_profile_id (10004
// missing, 10002 invalid from), text (10004), type (10015) and webhook_url
// (10003). Two magic recipients fail it: InvalidNumber (10002) and
// OptedOutNumber (40300, HTTP 409); so does any number that texted STOP
// through SendInbound, until it texts START.
//
// Messages live in memory. Detail records are searchable with filters
// direction, cld, cli, profile_id, created_at[gte] and created_at[lt], sort
// by created_at, and page[number]/page[size]: as soon as a message is
// stored, or, like real Telnyx's (see telnyx.Config.DetailRecordLag),
// Config.RecordDelay after it (measured on Config.Now, so a test moves a
// clock instead of sleeping). Only the search lags: a message is fetched
// by id, and its webhooks are posted, without delay.
//
// # Webhooks
//
// Run moves each accepted message to sent and then to delivered or, for
// Config.FailureRate of them, delivery_failed (40006 or 40001), one step
// every Config.CallbackDelay. When the message has a webhook_url, each step
// is posted there as message.sent and message.finalized, every event with
// its own data.id, signed with the sandbox's Ed25519 key (see Sign and
// PublicKeyBase64) in the telnyx-signature-ed25519 and telnyx-timestamp
// headers. A delivery that fails or is not answered 2xx is retried up to
// three times with the same data.id and a higher meta.attempt. Without Run,
// messages stay queued. SendInbound posts a signed message.received.
//
// # Faults
//
// InjectFaults queues faults that the next create requests suffer, one
// each, in order: an error status (a 429 with rate-limit headers, say), an
// accepted message answered with a 5xx, a hang after storing the message,
// or a dropped connection. SetChaos adds standing misbehaviour to every
// request (outage, latency, shares of 500 and 429), counted by Refused and
// Throttled. Messages, CreateCalls, FetchCalls, RecordCalls and
// ProfileCalls let a test see what happened.
package telnyxsandbox
