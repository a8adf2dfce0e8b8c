// Package twiliosandbox is a local server that answers like Twilio's
// Messaging REST API (2010-04-01), closely enough that the real twilio-go
// SDK works against it. `switchboard dev` runs it in place of Twilio, and
// tests point internal/twilio at it with TWILIO_API_BASE_URL.
//
// # API
//
// Server answers, with Twilio's JSON shapes and error codes:
//
//	POST /2010-04-01/Accounts/{AccountSid}/Messages.json         create (201)
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages.json         list: To, From, DateSent, DateSent<, DateSent>, PageSize, Page
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch (404, code 20404, when unknown)
//
// Every request needs HTTP Basic auth with the configured account SID and
// auth token (401, code 20003, otherwise). A create checks To (E.164, 21604
// when missing, 21211 when invalid), Body (21602 missing, 21617 over 1600
// characters), From or MessagingServiceSid (21603 missing, 21606 invalid)
// and StatusCallback (21609). Like Twilio's test credentials, a few magic
// recipients fail the create: +15005550001 (21211), +15005550002 (21612),
// +15005550003 (21408), +15005550004 (21610, opted out) and +15005550009
// (21614).
//
// Messages live in memory. A message has no date_sent until it is sent, so
// DateSent filters skip queued messages, as we understand Twilio to do.
//
// # Status callbacks
//
// Run moves each accepted message through sent to delivered, or, for
// Config.FailureRate of them, to undelivered (30003) or failed (30006),
// one step every Config.CallbackDelay. When the message has a
// StatusCallback, each step is posted to it form-encoded and signed the way
// Twilio signs (see Sign) in the X-Twilio-Signature header. Without Run,
// messages stay queued.
//
// # Faults
//
// InjectFaults queues faults that the next create requests suffer, one
// each, in order: an error status, an accepted message answered with a 5xx,
// a hang after storing the message, or a dropped connection. Messages,
// CreateCalls, ListCalls and FetchCalls let a test see what happened.
package twiliosandbox
