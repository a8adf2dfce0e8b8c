// Package chaos is Switchboard's crash and fault suite (`switchboard chaos`,
// `make chaos`) and issue 4's delivery-under-faults run. Everything it
// starts listens on 127.0.0.1 and is removed at the end.
//
// # What a run does
//
// Run makes a private PostgreSQL cluster in a temporary directory (initdb
// and pg_ctl, as the postgres user when the process is root, on a random
// free port), migrates it, serves sandbox providers in-process behind a
// fault injector, and starts the switchboard binary as the api and as
// Config.Workers worker processes. It then streams messages through
// switchboard.send_sms, one app transaction each, with distinct idempotency
// keys and unique bodies, counting on the client side what committed (a
// COMMIT that failed is "unknown" and retried with the same key, as the
// SQL API allows). Meanwhile, in chaos mode, it SIGKILLs a random worker at
// random intervals and restarts it, restarts PostgreSQL once (pg_ctl
// restart -m immediate by default), and has the providers fail: a share of
// 5xx, 429 with Retry-After and timeouts, part of the 5xx and timeouts after
// the sandbox stored the message, and a full outage window. Delivery mode
// sends a fixed number of valid messages through the provider faults and
// the outage only. After the stream it drains: it waits, up to a bound, for
// every message to be final.
//
// # What it checks
//
// In chaos mode the run also records heart-rate observations through
// switchboard.record_observation (Config.FHIRRate, one app transaction
// each, queueing fhir_push jobs in it) for an EHR endpoint whose base URL
// is a fault injector in front of the FHIR R4 peer (Medplum's router,
// internal/fhir/fhirsandbox, Node 20): the same 5xx, 429 and timeouts,
// part of them after the peer stored the resource. Every committed
// observation must end linked in fhir_links and held by the peer exactly
// once (searched by its business identifier), or its push job be
// legitimately on its way; a fhir_push dead letter fails the run, as none
// is planted.
//
// Every message whose send_sms committed has a row; every row is final, or
// a dead letter, or legitimately still on its way:
//
//   - accepted by a provider, final report pending (a callback lost while
//     the api or PostgreSQL was down is fetched by sms_reconcile);
//   - its job available, scheduled (snoozed: throttled, rate slot,
//     in-flight grace), snoozed for an unavailable destination within
//     job_kinds.unavailable_limit, or retryable with attempts left;
//   - its job running on a live worker (younger than SMS_SEND_TIMEOUT), or
//     left running by a SIGKILLed worker and not yet older than
//     WORKER_RESCUE_AFTER plus one round of River's rescuer.
//
// Anything else is lost: no row, no job, a completed job without a provider
// id or final status, a job that ended without a dead letter, a job out of
// attempts still marked retryable, or a running job the rescuer should have
// taken back. Every provider-side copy is attributed to an attempt: to the
// message named by the ?m=<id> the worker puts on every status-callback
// URL (its body must be that message's), and within it to the attempt that
// recorded its provider id, or else to an attempt on that provider still
// without an answer (no outcome, ambiguous, or held). The run fails on any
// message with more than one copy, more than one accepted attempt or
// attempts recording more than one provider id (no outcome excuses a
// second send), on a copy it cannot attribute, and on a copy that belongs
// to another message (another's body, or adopted by another message's
// attempt). A message whose reconciliation could not decide is held for an
// operator (attempt outcome held, dead letter reconcile_undecided):
// reported, not lost. Dead letters are otherwise expected only for
// permanent causes: the run plants a few (a magic recipient whose send
// fails with Twilio 21408). The run fails on any of these, on any loss,
// on a check that could not run (each is paged and retried first), and in
// delivery mode when
// the delivered share misses Config.Goal (Result.Failures lists why).
//
// # Convergence
//
// For every fault (the outage, the PostgreSQL restart, each SIGKILL) the
// run measures how long after its end the messages it held up became
// final: every message created before the fault ended and not final then,
// by the database's own final_at (see Convergence). The report states the
// Bound it checks against: an ambiguous send settles within the in-flight
// grace (with Telnyx, its detail-record lag when longer) plus one sms_send
// retry of its attempt, and every message must be final within the drain,
// which by default is derived from that bound. With Telnyx the workers run
// with a one-minute TELNYX_DETAIL_RECORD_LAG and the Telnyx sandbox's
// detail records lag 40 s, so the lag is exercised and still bounded.
package chaos
