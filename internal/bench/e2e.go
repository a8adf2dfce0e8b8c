package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// E2EConfig is the end-to-end scenario.
type E2EConfig struct {
	// NoopJobs are pre-inserted for River's no-op throughput.
	NoopJobs int
	// Messages are pre-inserted for the zero-latency provider.
	Messages int
	// Rate and LatencyDuration are the offered load of the latency cases.
	Rate            int
	LatencyDuration time.Duration
	// PollOnlyInterval is FetchPollInterval in the poll-only wake-up case.
	PollOnlyInterval time.Duration
	// WakeupCases compares the wake-up designs at WakeupRate, a load the
	// send path takes without queueing: the throttled NOTIFY chosen, poll
	// only, and a NOTIFY in every transaction.
	WakeupCases bool
	WakeupRate  int
	// ProviderLatency is the slow provider's; SlowWorkers the sms queue's
	// MaxWorkers in each slow case, and SlowMessages how many each sends.
	ProviderLatency time.Duration
	SlowWorkers     []int
	SlowMessages    int
	// Unshared adds the send path with SMS_BATCH_SIZE=1: every job claims
	// and records its result in transactions of its own (the design before
	// shared transactions).
	Unshared bool
	// RawClients and RawDuration size the raw commit baseline.
	RawClients  int
	RawDuration time.Duration
}

func (c *E2EConfig) defaults() {
	if c.NoopJobs <= 0 {
		c.NoopJobs = 30000
	}
	if c.Messages <= 0 {
		c.Messages = 10000
	}
	if c.Rate <= 0 {
		c.Rate = 500
	}
	if c.LatencyDuration <= 0 {
		c.LatencyDuration = 10 * time.Second
	}
	if c.WakeupRate <= 0 {
		c.WakeupRate = 200
	}
	if c.PollOnlyInterval <= 0 {
		c.PollOnlyInterval = 20 * time.Millisecond
	}
	if c.ProviderLatency <= 0 {
		c.ProviderLatency = 100 * time.Millisecond
	}
	if len(c.SlowWorkers) == 0 {
		c.SlowWorkers = []int{25, 50}
	}
	if c.RawClients <= 0 {
		c.RawClients = 16
	}
	if c.RawDuration <= 0 {
		c.RawDuration = 3 * time.Second
	}
}

const (
	groupThroughput = "e2e/throughput"
	groupLatency    = "e2e/latency"
	groupWakeup     = "e2e/wake-up"
	groupSlow       = "e2e/slow-provider"
	appSessions     = 32 // app connections of the latency cases
)

func runE2E(ctx context.Context, e *env) error {
	cfg := e.cfg.E2E
	steps := []func(context.Context, *env, *provider) error{
		e2eRawCommits, e2eNoopThroughput(false), e2eNoopThroughput(true), e2eCallOnly, e2eSMSThroughput,
		e2eNoopLatency, e2eLatency(startSMS, "", nil, 0, cfg.Rate, groupLatency, false),
	}
	if cfg.Unshared {
		steps = append(steps, e2eDrain(startSMSUnshared, unsharedLabel),
			e2eLatency(startSMSUnshared, unsharedLabel, nil, 0, cfg.Rate, groupLatency, false))
	}
	if cfg.WakeupCases {
		steps = append(steps,
			e2eLatency(startSMS, ", throttled NOTIFY (as shipped)", nil, 0, cfg.WakeupRate, groupWakeup, true),
			e2eLatency(startSMS, fmt.Sprintf(", poll only (no NOTIFY, FetchPollInterval %s)", cfg.PollOnlyInterval),
				map[string]string{"switchboard.wakeup_cooldown_ms": "off"}, cfg.PollOnlyInterval, cfg.WakeupRate, groupWakeup, false),
			e2eLatency(startSMS, ", NOTIFY every transaction", map[string]string{"switchboard.wakeup_cooldown_ms": "0"}, 0,
				cfg.WakeupRate, groupWakeup, false))
	}
	for _, w := range cfg.SlowWorkers {
		steps = append(steps, e2eSlowProvider(w))
	}
	for i, step := range steps {
		if i > 0 {
			if err := e.reset(ctx); err != nil {
				return err
			}
		}
		// A sandbox per step: it keeps every message it accepted.
		p, err := startProvider()
		if err != nil {
			return err
		}
		err = step(ctx, e, p)
		p.close()
		if err != nil {
			return err
		}
	}
	compare(e.report.Results, groupThroughput)
	compare(e.report.Results, groupLatency)
	compare(e.report.Results, groupWakeup)
	e2eTargets(e.report)
	return nil
}

// e2eRawCommits is the physical limit of one commit per job: single-row
// inserts, each its own transaction.
func e2eRawCommits(ctx context.Context, e *env, _ *provider) error {
	cfg := e.cfg.E2E
	e.logf("e2e: raw single-row commits, %d clients for %s", cfg.RawClients, cfg.RawDuration)
	pool, err := e.pool(ctx, int32(cfg.RawClients), nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	resetPeakRSS()
	var lat Latencies
	var wg sync.WaitGroup
	counts := make([]int, cfg.RawClients)
	errs := make([]error, cfg.RawClients)
	start := time.Now()
	deadline := start.Add(cfg.RawDuration)
	for c := range cfg.RawClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if _, err := pool.Exec(ctx, "INSERT INTO bench.domain (patient_ref, kind, payload) VALUES ($1, $2, $3)",
					"patient-"+strconv.Itoa(c), domainKind, domainPayload); err != nil {
					errs[c] = err
					return
				}
				lat.Add(time.Since(t0))
				counts[c]++
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	total := 0
	for c := range cfg.RawClients {
		if errs[c] != nil {
			return errs[c]
		}
		total += counts[c]
	}
	e.report.Results = append(e.report.Results, Result{
		Scenario: ScenarioE2E, Group: groupThroughput, Case: "raw single-row commits (physical limit, one commit per job)",
		Clients: cfg.RawClients, Throughput: float64(total) / took.Seconds(), Latency: lat.Summary(), PeakRSS: peakRSS(), RSSOf: "bench",
	})
	return nil
}

// e2eNoopThroughput is River's own ceiling on these settings: pre-inserted
// no-op jobs worked by a client configured like the sms worker. narrowGIN
// replaces River's GIN indexes, which every job state change writes, by the
// partial one Switchboard needs (a variant considered and not made).
func e2eNoopThroughput(narrowGIN bool) func(context.Context, *env, *provider) error {
	return func(ctx context.Context, e *env, _ *provider) error {
		cfg := e.cfg.E2E
		label := ""
		if narrowGIN {
			label = ", River's GIN indexes narrowed"
			if err := e.exec(ctx, narrowGINUp); err != nil {
				return err
			}
			defer func() { _ = e.exec(context.WithoutCancel(ctx), narrowGINDown) }()
		}
		e.logf("e2e: River no-op throughput, %d pre-inserted jobs, %d workers%s", cfg.NoopJobs, e.cfg.Workers, label)
		if err := insertNoop(ctx, e, cfg.NoopJobs); err != nil {
			return err
		}
		resetPeakRSS()
		r, _, err := startNoop(ctx, e, e.cfg.Workers)
		if err != nil {
			return err
		}
		err = waitFor(ctx, r.pool, "no-op jobs completed", cfg.NoopJobs, drainTimeout(cfg.NoopJobs, 200), countNoopCompleted)
		rss := peakRSS()
		r.stop()
		if err != nil {
			return err
		}
		times, err := finalizedAt(ctx, e)
		if err != nil {
			return err
		}
		e.report.Results = append(e.report.Results, Result{
			Scenario: ScenarioE2E, Group: groupThroughput, Baseline: !narrowGIN,
			Case:       fmt.Sprintf("River no-op worker, %d pre-inserted jobs%s", cfg.NoopJobs, label),
			Throughput: spanRate(times), PeakRSS: rss, RSSOf: "bench, in-process worker",
		})
		return nil
	}
}

// starter starts an sms_send worker on the bench database sending through p.
type starter func(ctx context.Context, e *env, p *provider, workers int, poll time.Duration) (*running, error)

// unsharedLabel marks the cases of the send path without shared
// transactions.
const unsharedLabel = " [SMS_BATCH_SIZE=1: no shared transactions]"

// e2eSMSThroughput drains pre-inserted messages through the real send
// path into a zero-latency sandbox.
func e2eSMSThroughput(ctx context.Context, e *env, p *provider) error {
	return e2eDrain(startSMS, "")(ctx, e, p)
}

// e2eDrain drains pre-inserted messages through the send path started by
// begin into a zero-latency sandbox.
func e2eDrain(begin starter, label string) func(context.Context, *env, *provider) error {
	return func(ctx context.Context, e *env, p *provider) error {
		cfg := e.cfg.E2E
		e.logf("e2e: send path throughput, %d pre-inserted messages, %d workers, 0 ms provider%s", cfg.Messages, e.cfg.Workers, label)
		p.sandbox.SetChaos(twiliosandbox.Chaos{})
		rss, err := drain(ctx, e, p, "drain", begin, "messages accepted", countAccepted)
		if err != nil {
			return err
		}
		res, err := drainResult(ctx, e, p, cfg.Messages)
		if err != nil {
			return err
		}
		res.Group, res.PeakRSS, res.RSSOf = groupThroughput, rss, "bench, in-process worker"
		res.Case = fmt.Sprintf("send_sms → sandbox Twilio (0 ms), full bookkeeping, %d messages%s", cfg.Messages, label)
		e.report.Results = append(e.report.Results, res)
		return nil
	}
}

// drain enqueues the scenario's messages (tagged tag), starts begin's worker
// and waits until count reaches them; it returns the peak RSS meanwhile.
func drain(ctx context.Context, e *env, p *provider, tag string, begin starter, what string, count func(context.Context, *pgxpool.Pool) (int, error)) (int64, error) {
	n := e.cfg.E2E.Messages
	if _, err := insertMessages(ctx, e, n, tag); err != nil {
		return 0, err
	}
	p.take()
	resetPeakRSS()
	r, err := begin(ctx, e, p, e.cfg.Workers, 0)
	if err != nil {
		return 0, err
	}
	err = waitFor(ctx, r.pool, what, n, drainTimeout(n, 100), count)
	rss := peakRSS()
	r.stop()
	return rss, err
}

// e2eSlowProvider drains messages into a sandbox that takes
// ProviderLatency per request with the given workers: the rate should be
// workers ÷ latency.
func e2eSlowProvider(workers int) func(context.Context, *env, *provider) error {
	return func(ctx context.Context, e *env, p *provider) error {
		cfg := e.cfg.E2E
		expected := float64(workers) / cfg.ProviderLatency.Seconds()
		n := cfg.SlowMessages
		if n <= 0 {
			n = int(8 * expected) // about eight seconds of work
		}
		e.logf("e2e: %d messages, %d workers, %s provider", n, workers, cfg.ProviderLatency)
		p.sandbox.SetChaos(twiliosandbox.Chaos{Latency: cfg.ProviderLatency})
		defer p.sandbox.SetChaos(twiliosandbox.Chaos{})
		if _, err := insertMessages(ctx, e, n, "slow"); err != nil {
			return err
		}
		p.take()
		resetPeakRSS()
		r, err := startSMS(ctx, e, p, workers, 0)
		if err != nil {
			return err
		}
		err = waitFor(ctx, r.pool, "messages accepted", n, drainTimeout(n, expected/4), countAccepted)
		rss := peakRSS()
		r.stop()
		if err != nil {
			return err
		}
		res, err := drainResult(ctx, e, p, n)
		if err != nil {
			return err
		}
		res.Group, res.PeakRSS, res.RSSOf = groupSlow, rss, "bench, in-process worker"
		res.Case = fmt.Sprintf("send_sms → sandbox Twilio (%s), %d workers", cfg.ProviderLatency, workers)
		res.ThroughputRatio = res.Throughput / expected
		res.Note += fmt.Sprintf("expected %.0f/s (workers ÷ %s); ", expected, cfg.ProviderLatency)
		e.report.Results = append(e.report.Results, res)
		return nil
	}
}

// drainResult measures a drain from what the provider saw and the
// database stored: the steady rate of provider ids stored, and duplicates.
func drainResult(ctx context.Context, e *env, p *provider, n int) (Result, error) {
	arrivals := p.take()
	pool, err := e.pool(ctx, 1, nil)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	acc, err := acceptedAt(ctx, pool)
	if err != nil {
		return Result{}, err
	}
	times := make([]time.Time, 0, len(acc))
	for _, t := range acc {
		times = append(times, t)
	}
	var attemptsDup int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT message_id FROM switchboard.message_attempts
		GROUP BY message_id HAVING count(*) > 1) d`).Scan(&attemptsDup); err != nil {
		return Result{}, err
	}
	res := Result{Scenario: ScenarioE2E, Throughput: spanRate(times)}
	res.Note = fmt.Sprintf("%d of %d sent; %d sent twice at the provider, %d with more than one attempt; ", len(arrivals), n, duplicates(arrivals), attemptsDup)
	return res, nil
}

func finalizedAt(ctx context.Context, e *env) ([]time.Time, error) {
	pool, err := e.pool(ctx, 1, nil)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	rows, err := pool.Query(ctx, "SELECT finalized_at FROM switchboard.river_job WHERE queue = $1 AND state = 'completed'", noopQueue)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[time.Time])
}

// drainTimeout allows a drain of n at a quarter of rate per second, and a
// minute more.
func drainTimeout(n int, rate float64) time.Duration {
	return time.Minute + time.Duration(float64(n)/max(rate, 1)*float64(time.Second))
}

// commits maps what an app transaction created to when it committed.
type commits struct {
	mu sync.Mutex
	at map[int64]time.Time
}

func (c *commits) add(id int64, t time.Time) {
	c.mu.Lock()
	c.at[id] = t
	c.mu.Unlock()
}

// e2eNoopLatency is River's own commit-to-work latency at the offered
// load: app transactions insert with River's InsertTx (River's throttled
// NOTIFY), the no-op worker notes when each job starts.
func e2eNoopLatency(ctx context.Context, e *env, _ *provider) error {
	cfg := e.cfg.E2E
	e.logf("e2e: River no-op latency at %d/s for %s", cfg.Rate, cfg.LatencyDuration)
	resetPeakRSS()
	r, nw, err := startNoop(ctx, e, e.cfg.Workers)
	if err != nil {
		return err
	}
	defer r.stop()
	app, err := e.pool(ctx, appSessions, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	c := &commits{at: map[int64]time.Time{}}
	n, err := warmOffer(ctx, cfg.Rate, cfg.LatencyDuration, func(ctx context.Context, n int64, measured bool) error {
		var id int64
		err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			if err := insertDomain(ctx, tx, n); err != nil {
				return err
			}
			res, err := r.client.InsertTx(ctx, tx, noopArgs{Seq: n}, nil)
			if err != nil {
				return err
			}
			id = res.Job.ID
			return nil
		})
		if err == nil && measured {
			c.add(id, time.Now())
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, r.pool, "no-op jobs worked", int(n.total), time.Minute, func(context.Context, *pgxpool.Pool) (int, error) {
		return int(nw.n.Load()), nil
	}); err != nil {
		return err
	}
	seen := nw.take()
	var lat Latencies
	for id, t := range c.at {
		if s, ok := seen[id]; ok {
			lat.Add(s.Sub(t))
		}
	}
	e.report.Results = append(e.report.Results, Result{
		Scenario: ScenarioE2E, Group: groupLatency, Baseline: true,
		Case:       fmt.Sprintf("River no-op, InsertTx at %d/s: commit → Work", cfg.Rate),
		Throughput: float64(n.measured) / cfg.LatencyDuration.Seconds(), Latency: lat.Summary(), PeakRSS: peakRSS(), RSSOf: "bench, in-process worker",
	})
	return nil
}

// e2eLatency is the send path's latency at an offered load: commit of the
// app transaction to the provider receiving the request, and to the
// provider id being stored, for the worker started by begin. params are
// the app sessions' settings (the wake-up design); poll overrides
// FetchPollInterval.
func e2eLatency(begin starter, label string, params map[string]string, poll time.Duration, rate int, group string, baseline bool) func(context.Context, *env, *provider) error {
	return func(ctx context.Context, e *env, p *provider) error {
		cfg := e.cfg.E2E
		e.logf("e2e: send path latency at %d/s for %s%s", rate, cfg.LatencyDuration, label)
		p.sandbox.SetChaos(twiliosandbox.Chaos{})
		p.take()
		resetPeakRSS()
		r, err := begin(ctx, e, p, e.cfg.Workers, poll)
		if err != nil {
			return err
		}
		defer r.stop()
		app, err := e.pool(ctx, appSessions, params)
		if err != nil {
			return err
		}
		defer app.Close()
		c := &commits{at: map[int64]time.Time{}}
		n, err := warmOffer(ctx, rate, cfg.LatencyDuration, func(ctx context.Context, n int64, measured bool) error {
			var id int64
			key := "bench-" + e.runID + "-lat-" + strconv.FormatInt(n, 10)
			err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
				if err := insertDomain(ctx, tx, n); err != nil {
					return err
				}
				return tx.QueryRow(ctx, "SELECT switchboard.send_sms($1, $2, $3, $4)", key, benchTo(n), benchBody,
					"patient-"+strconv.FormatInt(n%5000, 10)).Scan(&id)
			})
			if err == nil && measured {
				c.add(id, time.Now())
			}
			return err
		})
		if err != nil {
			return err
		}
		if err := waitFor(ctx, r.pool, "messages accepted", int(n.total), time.Minute, countAccepted); err != nil {
			return err
		}
		rss := peakRSS()
		arrivals := p.take()
		acc, err := acceptedAt(ctx, r.pool)
		if err != nil {
			return err
		}
		var toProvider, toRecorded Latencies
		for id, t := range c.at {
			if a, ok := arrivals[id]; ok {
				toProvider.Add(a[0].Sub(t))
			}
			if a, ok := acc[id]; ok {
				toRecorded.Add(a.Sub(t))
			}
		}
		rec := toRecorded.Summary()
		toProvider.mu.Lock()
		raw := slices.Clone(toProvider.d)
		toProvider.mu.Unlock()
		e.report.Results = append(e.report.Results, Result{
			rawLatency: raw,
			Scenario:   ScenarioE2E, Group: group, Baseline: baseline,
			Case:       fmt.Sprintf("send_sms at %d/s: commit → provider%s", rate, label),
			Throughput: float64(n.measured) / cfg.LatencyDuration.Seconds(), Latency: toProvider.Summary(), Latency2: &rec,
			PeakRSS: rss, RSSOf: "bench, in-process worker",
			Note: fmt.Sprintf("%d sent twice at the provider; status recorded = messages.accepted_at (start of the transaction storing the provider id)", duplicates(arrivals)),
		})
		return nil
	}
}

// latencyWarmup is offered before each latency case is measured, at its
// rate, so that pools and connections are open and caches warm in every
// case alike.
const latencyWarmup = 2 * time.Second

type offered struct{ total, measured int64 }

// warmOffer offers rate per second for latencyWarmup, unmeasured, then for
// d, measured, from appSessions goroutines.
func warmOffer(ctx context.Context, rate int, d time.Duration, fn func(ctx context.Context, n int64, measured bool) error) (offered, error) {
	var o offered
	var base int64
	for _, phase := range []struct {
		d        time.Duration
		measured bool
	}{{latencyWarmup, false}, {d, true}} {
		n, err := offer(ctx, rate, phase.d, appSessions, func(ctx context.Context, n int64) error {
			return fn(ctx, base+n, phase.measured)
		})
		if err != nil {
			return o, err
		}
		base += n + 1
		o.total += n
		if phase.measured {
			o.measured = n
		}
	}
	return o, nil
}

func e2eTargets(r *Report) {
	var noopRate, noopP99 float64
	var slow []Result
	rates, p99s := map[bool]float64{}, map[bool]float64{}
	for i, res := range r.Results {
		proto := strings.Contains(res.Case, unsharedLabel)
		switch {
		case res.Group == groupThroughput && res.Baseline:
			noopRate = res.Throughput
		case res.Group == groupThroughput && strings.HasPrefix(res.Case, "send_sms"):
			rates[proto] = res.Throughput
		case res.Group == groupLatency && res.Baseline:
			noopP99 = res.Latency.P99
		case res.Group == groupLatency:
			p99s[proto] = res.Latency.P99
		case res.Group == groupSlow:
			slow = append(slow, r.Results[i])
		}
	}
	for _, proto := range []bool{false, true} {
		suffix := ""
		if proto {
			suffix = " — with SMS_BATCH_SIZE=1 (no shared transactions)"
		}
		if rate, ok := rates[proto]; ok && noopRate > 0 {
			r.Targets = append(r.Targets, Target{
				Name: "e2e: zero-latency provider, full bookkeeping, vs River no-op throughput" + suffix, Met: rate/noopRate >= 0.5,
				Measured: rate / noopRate, Limit: "≥ 0.50×", Detail: fmt.Sprintf("%.0f vs %.0f per s", rate, noopRate),
			})
		}
		if p99, ok := p99s[proto]; ok && noopP99 > 0 {
			r.Targets = append(r.Targets, Target{
				Name: "e2e: p99 commit → provider at the offered load vs River no-op p99" + suffix, Met: p99/noopP99 <= 2,
				Measured: p99 / noopP99, Limit: "≤ 2×", Detail: fmt.Sprintf("p99 %.1f ms vs %.1f ms", p99, noopP99),
			})
		}
	}
	for _, res := range slow {
		r.Targets = append(r.Targets, Target{
			Name: "e2e: slow provider throughput vs workers ÷ latency, " + strings.TrimPrefix(res.Case, "send_sms → "),
			Met:  math.Abs(res.ThroughputRatio-1) <= 0.2, Measured: res.ThroughputRatio, Limit: "within ±20%",
			Detail: fmt.Sprintf("%.0f per s", res.Throughput),
		})
	}
}
