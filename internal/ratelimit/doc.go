// Package ratelimit holds rate limits in PostgreSQL, shared by every worker
// replica: a twilio sender number at 1 message per second, a Google Health
// user at 300 requests per minute, an EHR endpoint at its configured rate.
//
// # Algorithm
//
// Each key has one row in switchboard.rate_limits holding a GCRA (generic
// cell rate algorithm) theoretical arrival time. A Limit of N events per
// Period with burst B has emission interval T = Period/N; a call at time t is
// admitted when tat <= t + (B-1)·T, and then tat becomes max(tat, t) + T. In
// any window of length L at most B + L/T calls are admitted, whichever replica
// makes them: the decision and the update are one INSERT … ON CONFLICT DO
// UPDATE inside the SQL function switchboard.rate_limit_take, atomic under the
// key's row lock. A denied call writes nothing and learns how long to wait
// until its slot opens.
//
// # Keys
//
// A key is destination:subkey, for example twilio:+15005550006 (one of our
// own sender numbers) or google_health:conn_1234 (a connection id). The
// destination (a lowercase letter, then up to 31 lowercase letters, digits, _
// or -) labels the metric switchboard_ratelimit_waits_total; the subkey is
// free text, at most 200 bytes for the whole key, and must be an internal ID,
// never PHI such as a patient's phone number or email.
//
// # Using it in a worker
//
// Take never sleeps. A worker asks before calling the vendor and, when told
// to wait, returns river.JobSnooze(wait): the job comes back after the wait
// and asks again, and no attempt is spent.
//
//	wait, err := limiter.Take(ctx, "twilio:"+from, limit)
//	if err != nil {
//		return err
//	}
//	if wait > 0 {
//		return river.JobSnooze(wait)
//	}
//	// call the vendor
//
// A wait is exact: the next slot opens then. River makes a job snoozed for
// less than its scheduler interval available again at once, due at that time.
// All the jobs waiting on one key are told the same slot and only one of them
// gets it, so for a key with a deep backlog a worker should spread its
// snoozes (say, add jitter that grows with the job's snooze count) rather
// than have every waiting job ask again at once.
//
// Take runs one statement on the pool in its own transaction (one round
// trip). Never take inside a long transaction: the key stays locked, for every
// replica, until that transaction ends.
//
// # Cleanup and crashes
//
// The table is UNLOGGED: it writes no WAL, so a take does not wait for a WAL
// flush. After a crash (not a clean restart) or a failover it starts empty,
// so each key may admit one extra burst; vendors answer that rare excess with
// 429, which workers treat as throttled. Cleanup, called by the maintenance
// job, deletes the rows of keys idle longer than its argument; a deleted key
// behaves exactly like one whose burst has fully recovered.
package ratelimit
