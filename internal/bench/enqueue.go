package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// EnqueueConfig is the enqueue scenario.
type EnqueueConfig struct {
	// Clients are the concurrent app sessions measured (1, 4, 16).
	Clients []int
	// Slice is one case's turn; cases take turns Rounds times, so that a
	// slow minute of the machine hurts every case alike.
	Slice  time.Duration
	Rounds int
	// Ablations adds, at the largest client count, the cases that show
	// where the time goes: a NOTIFY in every transaction, no NOTIFY at all,
	// and River's stock GIN indexes.
	Ablations bool
}

func (c *EnqueueConfig) defaults() {
	if len(c.Clients) == 0 {
		c.Clients = []int{1, 4, 16}
	}
	if c.Slice <= 0 {
		c.Slice = time.Second
	}
	if c.Rounds <= 0 {
		c.Rounds = 4
	}
}

// Message content of the bench: no PHI, a typical reminder.
const (
	benchBody    = "Reminder: your appointment at Northside Clinic is tomorrow at 9:00. Reply C to confirm."
	domainKind   = "appointment_reminder"
	benchPayload = 260 // bytes of the domain row's payload
)

var domainPayload = strings.Repeat("x", benchPayload)

// benchTo is a fictional number (exchange 555) that libphonenumber
// accepts, so that the worker sends it.
func benchTo(n int64) string { return fmt.Sprintf("+1201555%04d", n%10000) }

// enqueueCase is one kind of app transaction.
type enqueueCase struct {
	name string
	// params are session settings of the case's connections.
	params map[string]string
	// outbox runs after the domain row, in the same transaction; nil for
	// the baseline.
	outbox func(ctx context.Context, tx pgx.Tx, key string, n int64) error
}

// noopArgs is a job that does nothing: River's own baseline.
type noopArgs struct {
	Seq int64 `json:"seq"`
}

const (
	noopKind  = "bench_noop"
	noopQueue = "bench"
)

func (noopArgs) Kind() string { return noopKind }

func (noopArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: noopQueue} }

func insertDomain(ctx context.Context, tx pgx.Tx, n int64) error {
	_, err := tx.Exec(ctx, "INSERT INTO bench.domain (patient_ref, kind, payload) VALUES ($1, $2, $3)",
		"patient-"+strconv.FormatInt(n%5000, 10), domainKind, domainPayload)
	return err
}

func runEnqueue(ctx context.Context, e *env) error {
	cfg := e.cfg.Enqueue
	maxClients := 0
	for _, c := range cfg.Clients {
		maxClients = max(maxClients, c)
	}
	var seq atomic.Int64
	sendSMS := func(fn string) func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
		sql := "SELECT " + fn + "($1, $2, $3, $4)"
		return func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
			var id int64
			return tx.QueryRow(ctx, sql, key, benchTo(n), benchBody, "patient-"+strconv.FormatInt(n%5000, 10)).Scan(&id)
		}
	}
	for _, clients := range cfg.Clients {
		pool, err := e.pool(ctx, int32(clients), nil)
		if err != nil {
			return err
		}
		inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: worker.Schema, Logger: e.logger})
		if err != nil {
			pool.Close()
			return err
		}
		cases := []enqueueCase{
			{name: "domain row only"},
			{name: "+ switchboard.send_sms", outbox: sendSMS("switchboard.send_sms")},
			{name: "+ jobs.SendSMS (Go wrapper)", outbox: func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
				_, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: key, To: benchTo(n), Body: benchBody,
					PatientRef: "patient-" + strconv.FormatInt(n%5000, 10)})
				return err
			}},
			{name: "+ send_sms as of 00014 (before)", outbox: sendSMS("bench.send_sms_00014")},
			{name: "+ River InsertTx (bare job, reference)", outbox: func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
				_, err := inserter.InsertTx(ctx, tx, noopArgs{Seq: n}, nil)
				return err
			}},
		}
		if cfg.Ablations && clients == maxClients {
			cases = append(cases,
				enqueueCase{name: "+ send_sms, NOTIFY every transaction", params: map[string]string{"switchboard.wakeup_cooldown_ms": "0"},
					outbox: sendSMS("switchboard.send_sms")},
				enqueueCase{name: "+ send_sms, no NOTIFY (poll only)", params: map[string]string{"switchboard.wakeup_cooldown_ms": "off"},
					outbox: sendSMS("switchboard.send_sms")},
				enqueueCase{name: "+ one more round trip (SELECT 1)", outbox: func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
					_, err := tx.Exec(ctx, "SELECT 1")
					return err
				}},
				enqueueCase{name: "+ message row only (send_sms without its job)", outbox: sendSMS("bench.message_only")},
				enqueueCase{name: "+ job row only (send_sms without its message)", outbox: func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
					_, err := tx.Exec(ctx, "SELECT bench.job_only($1)", n)
					return err
				}},
				enqueueCase{name: "+ both rows, one plain INSERT (floor: no function, checks, hash, idempotency or wake-up)", outbox: func(ctx context.Context, tx pgx.Tx, key string, n int64) error {
					_, err := tx.Exec(ctx, floorSQL, key, benchTo(n), benchBody, "patient-"+strconv.FormatInt(n%5000, 10))
					return err
				}})
		}
		group := fmt.Sprintf("enqueue/%d", clients)
		e.logf("enqueue: %d clients, %d cases × %d rounds of %s", clients, len(cases), cfg.Rounds, cfg.Slice)
		results, err := enqueueRounds(ctx, e, pool, cases, clients, group, &seq)
		pool.Close()
		if err != nil {
			return err
		}
		e.report.Results = append(e.report.Results, results...)
		compare(e.report.Results, group)

		if cfg.Ablations && clients == maxClients {
			for _, v := range schemaVariants {
				if err := enqueueVariant(ctx, e, v, clients, sendSMS("switchboard.send_sms"), &seq); err != nil {
					return err
				}
			}
		}
	}
	enqueueTarget(e.report, maxClients)
	return nil
}

// floorSQL writes what send_sms must write, a message row and its sms_send
// job in one statement, sent by the app itself: no function call, argument
// checks, content hash, idempotency (ON CONFLICT) or wake-up. It is the
// floor under any send_sms design that keeps both rows in the caller's
// transaction.
const floorSQL = `WITH m AS (
	INSERT INTO switchboard.messages (idempotency_key, content_hash, to_e164, body, patient_ref, job_id)
	VALUES ($1, '\x00'::bytea, $2, $3, $4, nextval('switchboard.river_job_id_seq'))
	RETURNING id, job_id)
INSERT INTO switchboard.river_job (id, kind, args, queue, priority, max_attempts, state, scheduled_at)
SELECT job_id, 'sms_send', jsonb_build_object('message_id', id), 'bench_idle', 2, 10, 'available', now() FROM m`

// narrowGINUp replaces River's GIN indexes on args and metadata, which
// every job state change writes, by the one partial index Switchboard's
// queries need (fhir_push and fhir_pull deduplication); narrowGINDown puts
// River's back. 00040 considered it and left River's schema alone: this
// variant keeps the evidence re-measurable.
const (
	narrowGINUp = `DROP INDEX switchboard.river_job_metadata_index; DROP INDEX switchboard.river_job_args_index;
		CREATE INDEX river_job_args_index ON switchboard.river_job USING gin (args)
			WHERE kind IN ('fhir_push', 'fhir_pull') AND state IN ('available', 'scheduled', 'retryable', 'pending')`
	narrowGINDown = `DROP INDEX IF EXISTS switchboard.river_job_args_index;
		CREATE INDEX river_job_args_index ON switchboard.river_job USING gin (args);
		CREATE INDEX IF NOT EXISTS river_job_metadata_index ON switchboard.river_job USING gin (metadata)`
)

// schemaVariant is a change to the bench database under which send_sms is
// measured again, against its own baseline, then undone.
type schemaVariant struct {
	name     string
	up, down string
}

// schemaVariants are changes considered for the enqueue path and not made:
// each measured against its own baseline so that a later run can revisit
// them.
var schemaVariants = []schemaVariant{
	{name: "River's GIN indexes narrowed (partial args, no metadata)", up: narrowGINUp, down: narrowGINDown},
	{
		name: "sequences cached (river_job_id_seq, messages.id: CACHE 32)",
		up: `ALTER SEQUENCE switchboard.river_job_id_seq CACHE 32;
			ALTER TABLE switchboard.messages ALTER COLUMN id SET CACHE 32`,
		down: `ALTER SEQUENCE switchboard.river_job_id_seq CACHE 1;
			ALTER TABLE switchboard.messages ALTER COLUMN id SET CACHE 1`,
	},
	{
		// No query in queries/, internal/ or the SQL functions filters
		// messages by created_at; the index is written by every send_sms.
		name: "without messages_open_idx",
		up:   `DROP INDEX switchboard.messages_open_idx`,
		down: `CREATE INDEX IF NOT EXISTS messages_open_idx ON switchboard.messages (created_at) WHERE status IN ('queued', 'sending', 'sent')`,
	},
	{
		name: "without river_job_kind and messages_open_idx",
		up:   `DROP INDEX switchboard.river_job_kind; DROP INDEX switchboard.messages_open_idx`,
		down: `CREATE INDEX IF NOT EXISTS river_job_kind ON switchboard.river_job (kind);
			CREATE INDEX IF NOT EXISTS messages_open_idx ON switchboard.messages (created_at) WHERE status IN ('queued', 'sending', 'sent')`,
	},
}

// enqueueVariant measures send_sms under v, with its own baseline.
func enqueueVariant(ctx context.Context, e *env, v schemaVariant, clients int, outbox func(context.Context, pgx.Tx, string, int64) error, seq *atomic.Int64) error {
	e.logf("enqueue: %d clients, %s", clients, v.name)
	if err := e.exec(ctx, v.up); err != nil {
		return fmt.Errorf("error preparing %s: %w", v.name, err)
	}
	defer func() { _ = e.exec(context.WithoutCancel(ctx), v.down) }()
	pool, err := e.pool(ctx, int32(clients), nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	group := fmt.Sprintf("enqueue/%d/%s", clients, v.name)
	results, err := enqueueRounds(ctx, e, pool, []enqueueCase{
		{name: "domain row only (variant baseline)"},
		{name: "+ send_sms, " + v.name, outbox: outbox},
	}, clients, group, seq)
	if err != nil {
		return err
	}
	e.report.Results = append(e.report.Results, results...)
	compare(e.report.Results, group)
	return nil
}

// enqueueRounds runs the cases in turns and returns one result each, the
// first being the baseline.
func enqueueRounds(ctx context.Context, e *env, pool *pgxpool.Pool, cases []enqueueCase, clients int, group string, seq *atomic.Int64) ([]Result, error) {
	cfg := e.cfg.Enqueue
	pools := make([]*pgxpool.Pool, len(cases))
	for i, c := range cases {
		if c.params == nil {
			pools[i] = pool
			continue
		}
		p, err := e.pool(ctx, int32(clients), c.params)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		pools[i] = p
	}
	resetPeakRSS()
	lats := make([]Latencies, len(cases))
	counts := make([]int64, len(cases))
	busy := make([]time.Duration, len(cases))
	// A short warm-up fills every connection's statement and plan caches.
	for i, c := range cases {
		if _, _, err := enqueueSlice(ctx, pools[i], c, clients, 200*time.Millisecond, e.runID, seq, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	for round := 0; round < cfg.Rounds; round++ {
		for i, c := range cases {
			n, took, err := enqueueSlice(ctx, pools[i], c, clients, cfg.Slice, e.runID, seq, &lats[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			counts[i] += n
			busy[i] += took
		}
	}
	rss := peakRSS()
	out := make([]Result, len(cases))
	for i, c := range cases {
		out[i] = Result{
			Scenario: ScenarioEnqueue, Case: c.name, Group: group, Baseline: i == 0, Clients: clients,
			Throughput: float64(counts[i]) / busy[i].Seconds(), Latency: lats[i].Summary(),
			PeakRSS: rss, RSSOf: "bench",
		}
	}
	return out, nil
}

// enqueueSlice runs app transactions of case c on clients sessions for d
// and returns how many committed and how long that took.
func enqueueSlice(ctx context.Context, pool *pgxpool.Pool, c enqueueCase, clients int, d time.Duration, runID string, seq *atomic.Int64, lat *Latencies) (int64, time.Duration, error) {
	var (
		wg       sync.WaitGroup
		n        atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	deadline := start.Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				k := seq.Add(1)
				key := "bench-" + runID + "-" + strconv.FormatInt(k, 10)
				t0 := time.Now()
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if err := insertDomain(ctx, tx, k); err != nil {
						return err
					}
					if c.outbox != nil {
						return c.outbox(ctx, tx, key, k)
					}
					return nil
				})
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				if lat != nil {
					lat.Add(time.Since(t0))
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return n.Load(), time.Since(start), firstErr
}

func enqueueTarget(r *Report, clients int) {
	group := fmt.Sprintf("enqueue/%d", clients)
	for _, res := range r.Results {
		if res.Group == group && res.Case == "+ switchboard.send_sms" && res.LatencyRatio > 0 {
			r.Targets = append(r.Targets, Target{
				Name:     fmt.Sprintf("enqueue: send_sms transaction median latency vs the same transaction without it, %d clients", clients),
				Met:      res.LatencyRatio <= 2,
				Measured: res.LatencyRatio,
				Limit:    "≤ 2×",
				Detail:   fmt.Sprintf("p50 %.2f ms; throughput %.2f× the baseline's", res.Latency.P50, res.ThroughputRatio),
			})
		}
	}
}
