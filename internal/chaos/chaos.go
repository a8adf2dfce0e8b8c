package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/database"
)

// Mode is what a run exercises.
type Mode string

// Modes.
const (
	// ModeChaos: a steady stream while workers are SIGKILLed, PostgreSQL
	// restarts and the providers fail; the checks look for loss.
	ModeChaos Mode = "chaos"
	// ModeDelivery: issue 4's delivery under faults: a fixed number of valid
	// messages, provider faults and an outage only; it reports the
	// delivered share within the drain window.
	ModeDelivery Mode = "delivery"
)

// Config is one run. Zero fields take the mode's defaults (Defaults).
type Config struct {
	Mode Mode
	// Binary is the switchboard executable run as the worker and api
	// processes (the running binary itself, or one a test built).
	Binary string
	// Duration bounds the stream; Messages bounds it by count (0: none).
	Duration time.Duration
	Messages int
	// Rate is messages per second.
	Rate float64
	// FHIRRate is heart-rate observations per second recorded alongside
	// the messages, each pushed to a FHIR peer behind the same faults; 0
	// disables FHIR (it needs Node 20 for the peer).
	FHIRRate float64
	// Seed makes the fault draws, the negative messages and the schedule of
	// kills repeatable (process timing still varies).
	Seed int64
	// Workers is the number of worker processes.
	Workers int
	// KillEvery is the mean time between SIGKILLs of a random worker
	// during the stream; 0 disables kills.
	KillEvery time.Duration
	// PGRestart is the pg_ctl shutdown mode of the one PostgreSQL restart
	// during the stream ("immediate", "fast"), or "none".
	PGRestart string
	// Faults is the providers' standing fault mix.
	Faults FaultMix
	// Outage is how long the first provider is fully down (503 to
	// everything), once, during the stream; 0 disables.
	Outage time.Duration
	// Drain bounds the wait, after the stream, for every message to be
	// final; the run ends earlier when they are. 0 derives it (Bound): the
	// mode's minimum (5 min chaos, 10 min delivery), or the settle bound of
	// an ambiguous send plus a margin when that is longer.
	Drain time.Duration
	// Providers served by sandboxes, in SMS_PROVIDERS order ("twilio",
	// "telnyx"). With "telnyx", the workers run with
	// TELNYX_DETAIL_RECORD_LAG telnyxRecordLag and the Telnyx sandbox's
	// detail records lag by telnyxRecordDelay.
	Providers []string
	// NegativeShare of messages go to magic recipients that end failed
	// (invalid number), blocked (opted out) or in a permanent dead letter.
	NegativeShare float64
	// ProviderFailureRate is the share of accepted messages the sandboxes
	// end undelivered/failed instead of delivered.
	ProviderFailureRate float64
	// Goal is the delivered share a delivery run must reach.
	Goal float64
	// RescueAfter is WORKER_RESCUE_AFTER for the workers. internal/worker
	// applies at least WORKER_JOB_TIMEOUT + 10 s; the run sets the job
	// timeout to the send timeout.
	RescueAfter time.Duration
	// Dir is where the run's temporary directory is made (os.TempDir()).
	Dir string
	// Keep keeps the temporary directory (logs, cluster) after the run.
	Keep bool
	// ChildEnv adds or overrides environment variables of the processes.
	ChildEnv map[string]string
}

// Defaults returns the defaults of a mode.
func Defaults(m Mode) Config {
	c := Config{
		Mode: m, Workers: 3, Providers: []string{"twilio"}, Faults: IssueMix,
		RescueAfter: 40 * time.Second, Goal: 0.999, PGRestart: "immediate",
	}
	switch m {
	case ModeDelivery:
		c.Messages, c.Rate, c.Outage = 10000, 50, time.Minute
		c.PGRestart = "none"
	default:
		c.Mode, c.Duration, c.Rate, c.KillEvery, c.Outage = ModeChaos, 3*time.Minute, 20, 30*time.Second, 30*time.Second
		c.FHIRRate = 5
		c.NegativeShare, c.ProviderFailureRate = 0.02, 0.02
	}
	return c
}

// minDrain is the shortest drain the mode derives (see Bound).
func (c Config) minDrain() time.Duration {
	if c.Mode == ModeDelivery {
		return 10 * time.Minute
	}
	return 5 * time.Minute
}

// withDefaults fills zero fields from Defaults(c.Mode); a zero Drain is
// derived (Bound).
func (c Config) withDefaults() Config {
	d := Defaults(c.Mode)
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Duration == 0 && c.Messages == 0 {
		c.Duration, c.Messages = d.Duration, d.Messages
	}
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.Workers == 0 {
		c.Workers = d.Workers
	}
	if c.PGRestart == "" {
		c.PGRestart = d.PGRestart
	}
	if len(c.Providers) == 0 {
		c.Providers = d.Providers
	}
	if c.Drain == 0 {
		c.Drain = c.bound().Derived
	}
	if c.Goal == 0 {
		c.Goal = d.Goal
	}
	if c.RescueAfter == 0 {
		c.RescueAfter = d.RescueAfter
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	return c
}

// validate reports a configuration that cannot run.
func (c Config) validate() error {
	switch {
	case c.Mode != ModeChaos && c.Mode != ModeDelivery:
		return fmt.Errorf("mode must be chaos or delivery")
	case c.Binary == "":
		return errors.New("the switchboard binary to run is not set")
	case c.Rate <= 0 || c.Rate > 2000:
		return errors.New("rate must be in (0, 2000] messages per second")
	case c.FHIRRate < 0 || c.FHIRRate > 200:
		return errors.New("fhir rate must be in [0, 200] observations per second")
	case c.Workers < 1 || c.Workers > 10:
		return errors.New("workers must be 1 to 10")
	case c.Duration < 0 || c.Messages < 0 || c.Drain < 0 || c.KillEvery < 0 || c.Outage < 0:
		return errors.New("durations and counts must not be negative")
	case c.Duration == 0 && c.Messages == 0:
		return errors.New("set a duration or a number of messages")
	case c.Duration > 2*time.Hour || c.Drain > 2*time.Hour:
		return errors.New("a run is bounded: duration and drain must be at most 2h")
	case c.PGRestart != "none" && c.PGRestart != "fast" && c.PGRestart != "immediate":
		return errors.New("pg restart must be immediate, fast or none")
	case c.NegativeShare < 0 || c.NegativeShare > 1 || c.ProviderFailureRate < 0 || c.ProviderFailureRate > 1 || c.Goal < 0 || c.Goal > 1:
		return errors.New("shares must be between 0 and 1")
	}
	for _, p := range c.Providers {
		if p != "twilio" && p != "telnyx" {
			return fmt.Errorf("unknown provider %q (twilio, telnyx)", p)
		}
	}
	return c.Faults.Validate()
}

// plannedStream is how long the stream is expected to last.
func (c Config) plannedStream() time.Duration {
	d := c.Duration
	if c.Messages > 0 {
		byCount := time.Duration(float64(c.Messages) / c.Rate * float64(time.Second))
		if d == 0 || byCount < d {
			d = byCount
		}
	}
	return d
}

// Kill is one SIGKILL of a worker.
type Kill struct {
	At          time.Duration // since the stream started
	Back        time.Duration // the worker restarted and ready again
	Worker      string
	RunningJobs int // sms_send jobs running (on any worker) at that moment
}

// Restart is the PostgreSQL restart.
type Restart struct {
	At       time.Duration
	Back     time.Duration // pg_ctl restart returned
	Mode     string
	Downtime time.Duration
	Err      string
}

// Outage is a provider's full outage window.
type Outage struct {
	Provider string
	At       time.Duration
	Length   time.Duration
}

// Result is what a run did and found.
type Result struct {
	Config          Config
	Run             string
	Stream          time.Duration // first to last enqueue
	Drain           time.Duration // last enqueue to settled (or the drain bound)
	Wall            time.Duration // start of the stream to the checks
	Settled         bool          // every message final or dead-lettered before the drain bound
	Enqueued        int
	Kills           []Kill
	Restarts        []Restart
	Outages         []Outage
	Faults          map[string]FaultCounts
	UnexpectedExits map[string][]string
	Check           *Check   // nil when the message check could not run (see CheckErrors)
	CheckErrors     []string // checks that could not run, with their reason: each fails the run
	Convergence     []Convergence
	FHIR            *FHIRCheck // nil when the run pushed no FHIR
	FHIRFaults      FaultCounts
	Dir             string // kept temporary directory, when Keep
}

// OK reports whether the run passed: Failures is empty.
func (r *Result) OK() bool { return len(r.Failures()) == 0 }

// Failures lists why the run failed, one line each; none when it passed.
// A check that could not run is a failure, as is a message sent twice
// (there is no excuse by attempt outcome), a provider copy no attempt of
// its message accounts for or that belongs to another message, a lost
// message, an unexpected dead letter, a FHIR loss or duplicate, a process
// that exited unasked, and in delivery mode a missed goal. Messages held
// for an operator are reported, not failures: held is the designed answer
// when a reconciliation cannot decide.
func (r *Result) Failures() []string {
	var f []string
	add := func(n int, format string) {
		if n > 0 {
			f = append(f, fmt.Sprintf(format, n))
		}
	}
	for _, e := range r.CheckErrors {
		f = append(f, "check could not run: "+e)
	}
	if c := r.Check; c != nil {
		add(c.LostCount(), "%d messages lost or stuck")
		add(len(c.Duplicates), "%d messages sent more than once")
		add(len(c.Unattributed), "%d provider copies no attempt of their message accounts for")
		add(len(c.Misattributed), "%d provider copies or adoptions that belong to another message")
		add(c.UnexpectedDeadLetters(), "%d dead letters without an expected cause")
		if r.Config.Mode == ModeDelivery && c.DeliveredShare() < r.Config.Goal {
			f = append(f, fmt.Sprintf("delivered %.2f%%, goal %.2f%%", c.DeliveredShare()*100, r.Config.Goal*100))
		}
	} else if len(r.CheckErrors) == 0 {
		f = append(f, "the message check did not run")
	}
	if fc := r.FHIR; fc != nil {
		add(fc.LostCount(), "%d FHIR observations lost")
		add(len(fc.Duplicates), "%d FHIR observations held more than once by the EHR")
	}
	for _, name := range sortedKeys(r.UnexpectedExits) {
		f = append(f, fmt.Sprintf("%s exited unasked %d times", name, len(r.UnexpectedExits[name])))
	}
	return f
}

// Run makes a private PostgreSQL cluster, migrates it, serves the sandbox
// providers, starts the api and the workers from cfg.Binary, streams
// messages while it breaks things, drains, checks, and removes everything.
// Progress goes to out. It returns an error when the run could not be made
// (no PostgreSQL binaries, a process that never got ready); a run that
// found loss returns a Result whose OK is false.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if out == nil {
		out = io.Discard
	}
	res := &Result{Config: cfg, Run: strconv.FormatInt(cfg.Seed, 36), Faults: map[string]FaultCounts{}, UnexpectedExits: map[string][]string{}}

	dir, err := os.MkdirTemp(cfg.Dir, "switchboard-chaos-")
	if err != nil {
		return nil, fmt.Errorf("error creating the run's directory: %w", err)
	}
	if cfg.Keep {
		res.Dir = dir
	} else {
		defer os.RemoveAll(dir)
	}
	logFile, err := os.Create(filepath.Join(dir, "chaos.log"))
	if err != nil {
		return nil, fmt.Errorf("error creating the run's log: %w", err)
	}
	defer logFile.Close()
	logger := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))

	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	say("chaos: mode %s, seed %d, run directory %s", cfg.Mode, cfg.Seed, dir)
	say("chaos: bound: %s", cfg.bound())

	cluster, err := StartCluster(ctx, filepath.Join(dir, "pg"))
	if err != nil {
		return nil, fmt.Errorf("error making the private PostgreSQL cluster: %w", err)
	}
	defer cluster.Stop(context.Background()) //nolint:errcheck
	say("chaos: private PostgreSQL on 127.0.0.1:%d", cluster.Port())
	if _, err := database.Migrate(ctx, database.Config{URL: cluster.URL()}, database.Up, logger); err != nil {
		return nil, err
	}
	pool, err := database.Open(ctx, database.Config{URL: cluster.URL(), MaxConns: 24})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	unavailableLimit, err := smsUnavailableLimit(ctx, pool)
	if err != nil {
		return nil, err
	}

	// Sandbox providers, each behind its fault injector.
	pctx, stopProviders := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProviders()
	var providers []*provider
	for i, name := range cfg.Providers {
		var p *provider
		switch name {
		case "twilio":
			p = newTwilio(cfg.Seed+int64(i), cfg.ProviderFailureRate, logger)
		case "telnyx":
			p = newTelnyx(cfg.Seed+int64(i), cfg.ProviderFailureRate, logger)
		}
		p.faults.setMix(cfg.Faults)
		if err := p.serve(pctx, logger); err != nil {
			return nil, err
		}
		providers = append(providers, p)
	}

	var (
		peer *fhirPeer
		obs  *obsStream
	)
	if cfg.FHIRRate > 0 {
		if peer, err = startFHIRPeer(pctx, cfg.Seed, cfg.Faults, logger); err != nil {
			return nil, fmt.Errorf("error starting the FHIR peer: %w", err)
		}
		defer peer.stop()
		if err := registerEndpoint(ctx, pool, peer.baseURL()); err != nil {
			return nil, err
		}
		obs = newObsStream(pool, res.Run, cfg.Seed)
		if err := obs.createPatients(ctx); err != nil {
			return nil, err
		}
		say("chaos: FHIR peer (Medplum) behind the faults at %s", peer.baseURL())
	}

	procs, err := startProcesses(ctx, cfg, cluster.URL(), providers, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		var wg sync.WaitGroup
		for _, c := range procs.all() {
			wg.Go(func() { c.stop(15 * time.Second) })
		}
		wg.Wait()
	}()
	say("chaos: api and %d workers ready; streaming %s", cfg.Workers, describeStream(cfg))

	// The stream, and the faults it runs through.
	st := newStream(pool, res.Run, cfg.Seed, cfg.NegativeShare)
	started := time.Now()
	// A stream bounded by count still ends: at twice its planned length
	// plus two minutes (an enqueue that cannot commit is retried, not
	// waited for forever).
	planned := cfg.plannedStream()
	limit := cfg.Duration
	if limit == 0 {
		limit = 2*planned + 2*time.Minute
	}
	streamCtx, endStream := context.WithTimeout(ctx, limit)
	defer endStream()
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xfa17))
	var actors sync.WaitGroup
	var resMu sync.Mutex
	if cfg.KillEvery > 0 {
		actors.Go(func() {
			killer(streamCtx, rand.New(rand.NewPCG(uint64(cfg.Seed), 0x4b111)), cfg.KillEvery, procs.workers, pool, started, func(k Kill) {
				resMu.Lock()
				res.Kills = append(res.Kills, k)
				resMu.Unlock()
			}, say)
		})
	}
	if cfg.PGRestart != "none" {
		at := time.Duration((0.55 + 0.15*rng.Float64()) * float64(planned))
		actors.Go(func() {
			if !sleepCtx(streamCtx, at) {
				return
			}
			say("chaos: %s restarting PostgreSQL (pg_ctl restart -m %s)", fmtOffset(time.Since(started)), cfg.PGRestart)
			r := Restart{At: time.Since(started), Mode: cfg.PGRestart}
			d, err := cluster.Restart(context.WithoutCancel(ctx), cfg.PGRestart)
			r.Downtime, r.Back = d, time.Since(started)
			if err != nil {
				r.Err = err.Error()
			}
			resMu.Lock()
			res.Restarts = append(res.Restarts, r)
			resMu.Unlock()
			say("chaos: %s PostgreSQL back after %s", fmtOffset(time.Since(started)), d.Round(time.Millisecond))
		})
	}
	if cfg.Outage > 0 {
		at := time.Duration((0.2 + 0.1*rng.Float64()) * float64(planned))
		actors.Go(func() {
			if !sleepCtx(streamCtx, at) {
				return
			}
			p := providers[0]
			o := Outage{Provider: p.name, At: time.Since(started)}
			say("chaos: %s %s outage begins (%s)", fmtOffset(o.At), p.name, cfg.Outage)
			p.setOutage(true)
			sleepCtx(streamCtx, cfg.Outage)
			p.setOutage(false)
			o.Length = time.Since(started) - o.At
			resMu.Lock()
			res.Outages = append(res.Outages, o)
			resMu.Unlock()
			say("chaos: %s %s outage ends", fmtOffset(time.Since(started)), p.name)
		})
	}
	progressCtx, stopProgress := context.WithCancel(ctx)
	go progress(progressCtx, pool, st, started, say)

	if obs != nil {
		actors.Go(func() { obs.runFor(streamCtx, cfg.FHIRRate) })
	}
	st.runFor(streamCtx, cfg.Rate, cfg.Messages, 16)
	res.Stream = time.Since(started)
	endStream()
	actors.Wait()
	res.Enqueued = len(st.snapshot())
	say("chaos: %s stream ended: %d messages (%v); draining up to %s", fmtOffset(res.Stream), res.Enqueued, st.counts(), cfg.Drain)

	// Drain: wait for every message to be final (or a dead letter).
	drainEnd := time.Now().Add(cfg.Drain)
	for {
		n, err := unsettled(ctx, pool, st.keyPrefix())
		if err == nil && obs != nil {
			var f int
			f, err = unpushed(ctx, pool)
			n += f
		}
		if err == nil && n == 0 {
			res.Settled = true
			break
		}
		if time.Now().After(drainEnd) || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, time.Second)
	}
	stopProgress()
	res.Drain = time.Since(started) - res.Stream
	res.Wall = time.Since(started)

	// Freeze the send side before reading it: the workers stop (SIGTERM,
	// as on a deploy) so that no send is accepted between the providers'
	// snapshot and the database read; a copy and the attempt that made it
	// are then seen together or not at all. A job cut short by the stop
	// is judged like any other (retryable, or running and not yet
	// rescued).
	var freeze sync.WaitGroup
	for _, w := range procs.workers {
		freeze.Go(func() { w.stop(15 * time.Second) })
	}
	freeze.Wait()
	var copies []sent
	for _, p := range providers {
		copies = append(copies, p.messages()...)
		fc := p.faults.counts()
		fc.OutageRefused = p.refused()
		res.Faults[p.name] = fc
	}
	for _, c := range procs.all() {
		if u := c.unexpectedExits(); len(u) > 0 {
			res.UnexpectedExits[c.name] = u
		}
	}
	params := checkParams{
		run: res.Run, rescueAfter: max(cfg.RescueAfter, sendTimeout+10*time.Second), rescueInterval: 30 * time.Second,
		sendTimeout: sendTimeout, unavailableLimit: unavailableLimit,
	}
	res.runChecks(context.WithoutCancel(ctx), pool, params, started, st.snapshot(), copies, peer, obs)
	return res, nil
}

// runChecks judges the run. Every check ends in a finding: one that cannot
// run (the database gone, the EHR not answering) is retried on transient
// errors for a while and then recorded in CheckErrors, which fails the
// run with its reason; it never ends the run without a verdict.
func (r *Result) runChecks(ctx context.Context, pool *pgxpool.Pool, params checkParams, started time.Time, enq []enqueue, copies []sent, peer *fhirPeer, obs *obsStream) {
	now := time.Now()
	retryCheck := func(ctx context.Context, check func(context.Context) error) error {
		return retry(ctx, checkTries, cmp.Or(params.checkPause, checkPause), checkTimeout, check)
	}
	err := retryCheck(ctx, func(ctx context.Context) (err error) {
		r.Check, err = runCheck(ctx, pool, params, enq, copies, now)
		return err
	})
	if err != nil {
		r.Check = nil
		r.CheckErrors = append(r.CheckErrors, "messages: "+err.Error())
	}
	err = retryCheck(ctx, func(ctx context.Context) (err error) {
		r.Convergence, err = measureConvergence(ctx, pool, "chaos-"+params.run+"-", started, r.faultEnds())
		return err
	})
	if err != nil {
		r.Convergence = nil
		r.CheckErrors = append(r.CheckErrors, "convergence: "+err.Error())
	}
	if obs != nil {
		r.FHIRFaults = peer.faults.counts()
		err = retryCheck(ctx, func(ctx context.Context) (err error) {
			r.FHIR, err = checkFHIR(ctx, pool, params, peer, obs.snapshot(), now)
			return err
		})
		if err != nil {
			r.FHIR = nil
			r.CheckErrors = append(r.CheckErrors, "FHIR: "+err.Error())
		}
	}
}

// checkTries and checkTimeout bound one check: each try has its own
// deadline, and a failed try is repeated after checkPause.
const (
	checkTries   = 3
	checkTimeout = 10 * time.Minute
	checkPause   = 5 * time.Second
)

// retry runs check until it succeeds, fails with a permanent error, or
// tries tries failed, each try with its own deadline and a pause between
// them, and returns the last error.
func retry(ctx context.Context, tries int, pause, timeout time.Duration, check func(context.Context) error) error {
	var err error
	for try := range tries {
		if try > 0 && !sleepCtx(ctx, pause) {
			break
		}
		tctx, cancel := context.WithTimeout(ctx, timeout)
		err = check(tctx)
		cancel()
		if _, stop := errors.AsType[permanent](err); err == nil || stop {
			return err
		}
	}
	return err
}

// permanent marks an error that trying again cannot change.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Settings the processes run with (see childEnv).
const (
	requestTimeout = 3 * time.Second
	sendTimeout    = 20 * time.Second
	// inflightGrace is SMS_INFLIGHT_GRACE: longer than SMS_SEND_TIMEOUT.
	inflightGrace = sendTimeout + 3*time.Second
	// telnyxRecordLag is TELNYX_DETAIL_RECORD_LAG when telnyx is a
	// provider (production's default is 5 min, as long as the chaos
	// drain): an empty detail-record search proves a Telnyx copy absent
	// only for attempts older than this. Short enough for a run to
	// converge (Bound), long enough to cover telnyxRecordDelay.
	telnyxRecordLag = time.Minute
	// telnyxRecordDelay is how long the Telnyx sandbox keeps an accepted
	// message out of its detail-record search (telnyxsandbox.Config
	// .RecordDelay), as Telnyx's may lag: longer than inflightGrace, so a
	// look-up after the grace can miss a copy Telnyx holds and only the
	// lag keeps it from being sent again; shorter than telnyxRecordLag
	// less the request timeout (a copy is stored within the request), so
	// the lag covers every copy the delay hides.
	telnyxRecordDelay = 40 * time.Second
)

// childSetting is a duration the processes run with: key from
// Config.ChildEnv when set there and valid, otherwise def.
func childSetting(c Config, key string, def time.Duration) time.Duration {
	if v, ok := c.ChildEnv[key]; ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// processes are the api and the workers.
type processes struct {
	api     *child
	workers []*child
}

func (p *processes) all() []*child { return append([]*child{p.api}, p.workers...) }

// childEnv is the environment every process gets: nothing inherited but
// PATH and HOME, so a stray DATABASE_URL never points a run elsewhere.
func childEnv(cfg Config, dbURL, publicURL string, providers []*provider) map[string]string {
	env := map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"),
		"DATABASE_URL":    dbURL,
		"LOG_FORMAT":      "json",
		"LOG_LEVEL":       "info",
		"PUBLIC_BASE_URL": publicURL,
		"WORKER_QUEUES":   "sms=50,fhir=10,inbound=20,maintenance=2",
		// Three workers, the api and the stream share one small cluster.
		"WORKER_DB_MAX_CONNS":     "20",
		"API_DB_MAX_CONNS":        "10",
		"WORKER_SHUTDOWN_TIMEOUT": "5s",
		// Jobs of a SIGKILLed worker come back within the run.
		"WORKER_RESCUE_AFTER": cfg.RescueAfter.String(),
		"WORKER_JOB_TIMEOUT":  sendTimeout.String(),
		// A send's request ends within SMS_SEND_TIMEOUT; an attempt
		// without an answer is looked up only after that and a margin
		// (inflightGrace), so a request still on its way is never
		// presumed absent and sent again.
		"SMS_SEND_TIMEOUT":   sendTimeout.String(),
		"FHIR_JOB_TIMEOUT":   sendTimeout.String(),
		"SMS_INFLIGHT_GRACE": inflightGrace.String(),
		// Status callbacks lost while the api or PostgreSQL was down are
		// looked up within the run instead of after 30 minutes.
		"SMS_RECONCILE_AFTER":    "20s",
		"SMS_RECONCILE_INTERVAL": "10s",
		"PROBE_INTERVAL":         "10s",
	}
	names := make([]string, 0, len(providers))
	for _, p := range providers {
		names = append(names, p.name)
		for k, v := range p.childEnv(p.URL()) {
			env[k] = v
		}
		prefix := strings.ToUpper(p.name)
		env[prefix+"_REQUEST_TIMEOUT"] = requestTimeout.String()
		env["DEST_"+prefix+"_BREAKER_OPEN_FOR"] = "10s"
	}
	env["SMS_PROVIDERS"] = strings.Join(names, ",")
	for k, v := range cfg.ChildEnv {
		env[k] = v
	}
	return env
}

func envList(m map[string]string, extra map[string]string) []string {
	out := make([]string, 0, len(m)+len(extra))
	for _, k := range sortedKeys(m) {
		if _, over := extra[k]; !over {
			out = append(out, k+"="+m[k])
		}
	}
	for _, k := range sortedKeys(extra) {
		out = append(out, k+"="+extra[k])
	}
	return out
}

// startProcesses starts the api and the workers and waits until each is
// ready.
func startProcesses(ctx context.Context, cfg Config, dbURL string, providers []*provider, dir string) (*processes, error) {
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	env := childEnv(cfg, dbURL, "http://"+apiAddr, providers)
	procs := &processes{api: &child{
		name: "api", binary: cfg.Binary, args: []string{"api"},
		env:     envList(env, map[string]string{"API_ADDR": apiAddr, "API_METRICS_ADDR": "127.0.0.1:0"}),
		logPath: filepath.Join(dir, "api.log"), readyURL: "http://" + apiAddr + "/readyz",
	}}
	for i := range cfg.Workers {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		procs.workers = append(procs.workers, &child{
			name: fmt.Sprintf("worker-%d", i+1), binary: cfg.Binary, args: []string{"worker"},
			env:     envList(env, map[string]string{"WORKER_ADDR": addr, "WORKER_METRICS_ADDR": "127.0.0.1:0"}),
			logPath: filepath.Join(dir, fmt.Sprintf("worker-%d.log", i+1)), readyURL: "http://" + addr + "/readyz",
		})
	}
	for _, c := range procs.all() {
		if err := c.start(); err != nil {
			return procs, err
		}
	}
	for _, c := range procs.all() {
		if err := c.waitReady(ctx, time.Minute); err != nil {
			for _, c := range procs.all() {
				c.stop(5 * time.Second)
			}
			return nil, err
		}
	}
	return procs, nil
}

// killer SIGKILLs a random worker every [0.5, 1.5] × every until ctx ends,
// restarting each two seconds later. It returns after the last restart.
func killer(ctx context.Context, rng *rand.Rand, every time.Duration, workers []*child, pool *pgxpool.Pool, started time.Time, record func(Kill), say func(string, ...any)) {
	for {
		wait := time.Duration((0.5 + rng.Float64()) * float64(every))
		if !sleepCtx(ctx, wait) {
			return
		}
		w := workers[rng.IntN(len(workers))]
		k := Kill{At: time.Since(started), Worker: w.name}
		qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = pool.QueryRow(qctx, `SELECT count(*) FROM switchboard.river_job WHERE state = 'running' AND kind = 'sms_send'`).Scan(&k.RunningJobs)
		cancel()
		if err := w.kill(); err != nil {
			say("chaos: could not kill %s: %v", w.name, err)
			continue
		}
		say("chaos: %s SIGKILL %s (%d sms_send jobs running)", fmtOffset(k.At), k.Worker, k.RunningJobs)
		time.Sleep(2 * time.Second)
		if err := w.start(); err != nil {
			say("chaos: could not restart %s: %v", w.name, err)
		} else if err := w.waitReady(context.Background(), time.Minute); err != nil {
			say("chaos: %v", err)
		}
		k.Back = time.Since(started)
		record(k)
	}
}

// progress prints a status line every 10 seconds until ctx ends.
func progress(ctx context.Context, pool *pgxpool.Pool, st *stream, started time.Time, say func(string, ...any)) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		counts := map[string]int{}
		rows, err := pool.Query(qctx, `SELECT status, count(*) FROM switchboard.messages WHERE idempotency_key LIKE $1 || '%' GROUP BY status`, st.keyPrefix())
		if err == nil {
			for rows.Next() {
				var s string
				var n int
				if rows.Scan(&s, &n) == nil {
					counts[s] = n
				}
			}
			rows.Close()
		}
		cancel()
		parts := make([]string, 0, len(counts))
		for _, k := range sortedKeys(counts) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
		}
		status := strings.Join(parts, " ")
		if err != nil {
			status = "(database unavailable)"
		}
		say("chaos: %s enqueued %d; messages %s", fmtOffset(time.Since(started)), len(st.snapshot()), status)
	}
}

func smsUnavailableLimit(ctx context.Context, pool *pgxpool.Pool) (time.Duration, error) {
	var iv pgtype.Interval
	if err := pool.QueryRow(ctx, `SELECT unavailable_limit FROM switchboard.job_kinds WHERE kind = 'sms_send'`).Scan(&iv); err != nil {
		return 0, fmt.Errorf("error reading sms_send's unavailable limit: %w", err)
	}
	return time.Duration(iv.Microseconds)*time.Microsecond + time.Duration(iv.Days)*24*time.Hour, nil
}

func describeStream(cfg Config) string {
	s := fmt.Sprintf("%g messages/s", cfg.Rate)
	if cfg.Messages > 0 {
		s = fmt.Sprintf("%d messages at %s", cfg.Messages, s)
	}
	if cfg.Duration > 0 {
		s += " for up to " + cfg.Duration.String()
	}
	return s
}

// sleepCtx sleeps d; it reports false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func fmtOffset(d time.Duration) string { return "t+" + d.Round(time.Second).String() }
