// Package wearables is the wearables domain: device connections (Google
// Health API v4 for Fitbit devices, Apple Health uploads), token refresh
// that never races or storms, syncs triggered by notifications, a periodic
// poll and a backfill, normalization and plausibility of every data point,
// and the workers that carry it all out.
//
// # Shape
//
// This package decides; the adapters only speak their source's protocol:
//
//   - internal/googlehealth: Google's OAuth endpoints, the Health API reads
//     (pages, daily roll-ups, identity) and webhook verification. Every
//     failure is a typed error with a Class (unauthorized, throttled,
//     retryable, permanent …) that this package turns into an outcome.
//   - internal/applehealth: the parser of the uploads the iOS client posts
//     (there is no server API to call).
//   - internal/wearables/units: exact unit conversion.
//
// The contract between a source and the domain is Measurement (normalize.go):
// FromGoogle, FromGoogleDailySteps and FromApple turn a source's point into a
// Measurement with a kind, a UCUM unit, the value (and the value and unit as
// sent), its time, and a SourceID unique within its source that makes every
// store idempotent. Assess then rejects what is physically impossible (kept,
// never pushed) and flags what is abnormal (pushed with the flag). The two
// sources do not share a Go interface: Google is pulled (OAuth, pages, rate
// limits) and Apple pushes (upload tokens), so they meet only at
// Measurement and at Service.store.
//
// Service (service.go) is the domain shared by the workers and the api:
// access tokens (token.go: AccessToken refreshes under the connection's row
// lock, so one refresh reaches Google however many jobs need it; a dead
// grant moves the connection to needs_reauth with one re-connect SMS
// through the outbox), storing samples and promoting them to observations,
// deletions (store.go) and summaries (summarize.go).
//
// # Wiring
//
// cmd calls Register with a River workers bundle and Deps; it adds every
// wearables worker and returns the periodic jobs to add to the client (the
// poll). The api gets an *API from NewAPI (api.go): the OAuth connect flow
// (single-use links, browser-bound state, account swaps refused), the Google
// Health webhook inbox and Apple Health uploads. Both build their own
// Service from the same Deps; the google_health resilience destination is
// registered on Deps.Registry.
//
// # Workers
//
// One file per worker; each decides its outcome in one place (DESIGN.md's
// outcome classes). jobs/doc.go has the operator's view of each kind.
//
//   - SyncWorker (sync.go, wearable_sync): reads one window of one data type
//     and stores each point once. Holds, without spending an attempt, for the
//     per-user rate limit, Google's 429 and an unavailable google_health
//     destination (River UI shows why in the job's hold_reason). A revoked
//     grant ends in needs_reauth, an ungranted scope disables the type, our
//     own bad request is a dead letter, anything else is retried.
//   - BackfillWorker (backfill.go, wearable_backfill): after a consent,
//     enqueues day syncs from each type's cursor, newest first, spaced.
//   - NotificationWorker (notification.go, wearable_notification): turns a
//     stored notification into day syncs (a DELETE re-reads the window and
//     marks what is gone entered-in-error).
//   - PollWorker (poll.go, wearable_poll): the periodic safety net: syncs of
//     recent days, stale connections flagged, summaries caught up.
//   - SummarizeWorker (summarize.go, wearable_summarize): one observation
//     per closed period of high-frequency samples (heart rate).
//   - RevokeWorker (revoke.go, wearable_revoke): revokes a disconnected
//     grant at Google, then erases its tokens.
//   - IngestWorker (ingest.go, apple_health_ingest): promotes an accepted
//     upload's samples and applies its deletions.
//
// Every sync window is a whole UTC day (window.go), so a notification, the
// poll and a backfill of the same day enqueue the same args: one unique
// job. Jobs that write complete in the same transaction (enqueue.go), so a
// crash leaves either everything or nothing for River to run again.
//
// # Data
//
// Every sample received is stored once in switchboard.wearable_samples
// (unique per source and source id). Valid ones become observations through
// switchboard.record_observation, which enqueues fhir_push in the same
// transaction; physically impossible ones stay there with a rejection reason;
// heart rate stays there raw and is pushed as a summary per period. A sample
// deleted at its source marks its observation entered-in-error and pushes
// that correction.
package wearables
