// Package bench measures Switchboard against baselines measured in the same
// run, on the same database: `switchboard bench` (cmd/switchboard/bench.go)
// is its command.
//
// On a shared two-core machine the same pgbench run gives 521 or 8,645
// transactions a second depending on the minute (fsync time swings 40×), so
// an absolute number means little. Every case here is reported next to a
// baseline measured back to back with it (enqueue cases even take turns,
// one second each, several rounds), and the ratios are what to read.
//
// # Database
//
// Run creates bench_<random> on the server of the URL it is given, migrates
// it with the embedded migrations (internal/database.Migrate), adds its own
// schema (schema.sql: the app's domain table and a frozen copy of
// send_sms as 00014 defined it), and drops it at the end. Scenarios start
// from an emptied, vacuumed and checkpointed database.
//
// # Scenarios
//
// enqueue: app transactions of 1, 4 and 16 sessions, each a ~300-byte
// domain row, with and without switchboard.send_sms (and jobs.SendSMS, the
// 00014 send_sms, a bare River InsertTx for reference). At 16 sessions it
// also measures where the time goes: one more round trip, the message row
// alone, the job row alone, a NOTIFY in every transaction, no NOTIFY, and
// schema variants considered and not made (River's GIN indexes narrowed,
// cached sequences, two indexes dropped), each against its own baseline.
//
// e2e: raw single-row commits (the physical limit of one commit per job);
// River's no-op worker draining pre-inserted jobs on the same client
// settings (internal/worker.NewClient); the production send path (cmd's
// newWorker: SendWorker, resilience, the real Twilio adapter) draining
// pre-inserted messages into the sandbox Twilio; commit-to-provider latency
// at an offered load (500/s) next to River's no-op commit-to-Work latency;
// the wake-up designs at a load the send path takes without queueing; and
// the slow (100 ms) provider. It also measures the send path with
// SMS_BATCH_SIZE=1 (every job its own transactions, the design before
// shared transactions) and River with a provider call and no bookkeeping
// (callonly.go), the ceiling any bookkeeping is measured under.
//
// scaleout: 1, 2 and 3 `switchboard worker` processes (this binary) on one
// database with the 100 ms sandbox served by the bench; throughput, peak
// RSS of each worker (VmHWM, read before it exits), and duplicates counted
// at the provider (create requests per message id, carried in the status
// callback URL) and in message_attempts.
//
// soak: a steady rate for a minute; latency per 10 s window, dead tuples
// and size of river_job and messages from pg_stat_user_tables.
//
// settings: River's defaults, fetch cooldowns, pool sizes, worker counts
// and Go's default HTTP idle pool, on the send path; not run by default.
//
// # What is measured how
//
// Latency of an app transaction: BEGIN to COMMIT returned, per transaction.
// Commit to provider: the Go clock after COMMIT returned to the sandbox
// receiving the create request (before its own latency). Commit to
// recorded: to messages.accepted_at, the start of the transaction that
// stores the provider id (same host, same clock). Drain throughput: the
// middle 80% of completion times (finalized_at, accepted_at) over the time
// they span, so start-up and tail do not count. Peak RSS: this process's
// VmHWM, reset (/proc/self/clear_refs) after a GC at the start of each case,
// so in-process cases include the sandbox and the load generator.
//
// # Findings behind migration 00040
//
// A NOTIFY makes the committing transaction take a cluster-wide lock until
// its commit record is flushed: transactions that notify commit one at a
// time. With a NOTIFY in every send_sms, 16 sessions got half the
// throughput of the same transactions without it (enqueue: "NOTIFY every
// transaction" against "no NOTIFY"). 00040 throttles it to one per queue
// per 5 ms across sessions with a non-transactional clock, writes the
// message row once (the job id comes first, no UPDATE), and writes message
// and job in one statement. What remains is the two rows themselves: at 16
// sessions the message row alone and the job row alone each cost about one
// more baseline transaction, and both rows in one plain INSERT, with no
// function, checks, idempotency or wake-up (the "floor" case), cost
// 1.86–2.07×. Single-session CPU per transaction (pgbench scripts, November
// 2026): baseline 7 µs, the two raw rows +58–60 µs (River's row about 45:
// seven indexes, two of them GIN, and five CHECK constraints), all of
// send_sms about 81.
//
// # Findings behind migration 00097
//
// Time per transaction on this machine swings too much to weigh parts of
// send_sms against each other, so 00097 was weighed in instructions:
// callgrind on a single-user backend (postgres --single) of a copy of the
// migrated database, running BEGIN, one prepared statement (EXECUTE) and
// COMMIT 50 and 250 times; the difference over 200 is one transaction, and
// repeats agree within 1%. The floor statement: 811k; send_sms as 00040
// left it: 1,164k; as 00097 leaves it: 1,043k (BEGIN, SELECT 1, COMMIT:
// 48k). The set-up of expressions dominated the difference, not the work:
// PL/pgSQL prepares each simple expression again in every transaction, with
// an EXECUTE permission check per function referenced when the definer is
// not a superuser. The migration's header lists what each remaining part
// costs. A third of the floor itself (339k) is both tables' CHECK
// constraints read back from their stored text in every statement
// (ExecConstraints, stringToNode); it is paid by any design that writes the
// two rows.
//
// # Findings behind the shared send transactions
//
// Per job, the send path ran three transactions (decide, record the
// attempt, record the id and complete); the case with SMS_BATCH_SIZE=1
// still measures that shape. Shared claim and result transactions (group
// commit in internal/sms) made the zero-latency drain 4–5× faster and cut
// p99 at 500/s several-fold. The "call only" case — River plus one request
// through twilio-go to the in-process sandbox, nothing stored — is the
// ceiling for any bookkeeping on these two cores: about 0.6× of River's
// no-op. Claims run in two lanes (a lone message is claimed at once),
// results in one (the largest batches; results are off the path to the
// provider).
package bench
