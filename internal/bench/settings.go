package bench

import (
	"context"
	"fmt"
	"time"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
)

// settingsCase is one River client configuration of the settings sweep.
type settingsCase struct {
	name     string
	set      func(*worker.Config)
	workers  int
	latency  time.Duration // the provider's
	messages int
	rate     int // > 0: a latency case at this offered load instead of a drain
}

// runSettings compares River client settings on the real send path: drains
// of pre-inserted messages (zero-latency and slow provider) and latency at
// a moderate load. It informs internal/worker's defaults; it is not part of
// the default run.
func runSettings(ctx context.Context, e *env) error {
	river := func(c *worker.Config) { c.FetchCooldown, c.FetchPollInterval = 100*time.Millisecond, time.Second }
	ours := func(*worker.Config) {}
	fast := func(c *worker.Config) { c.FetchCooldown, c.FetchPollInterval = 2*time.Millisecond, 50*time.Millisecond }
	groups := []struct {
		name  string
		cases []settingsCase
	}{
		{"settings/drain 0 ms", []settingsCase{
			{name: "as configured", set: ours, workers: 100, messages: 4000},
			{name: "River defaults (cooldown 100ms, poll 1s)", set: river, workers: 100, messages: 4000},
			{name: "cooldown 2ms, poll 50ms", set: fast, workers: 100, messages: 4000},
			{name: "pool 20 conns", set: func(c *worker.Config) { c.DBMaxConns = 20 }, workers: 100, messages: 4000},
			{name: "pool 100 conns", set: func(c *worker.Config) { c.DBMaxConns = 100 }, workers: 100, messages: 4000},
			{name: "50 workers", set: ours, workers: 50, messages: 4000},
			{name: "200 workers", set: ours, workers: 200, messages: 4000},
			{name: "HTTP idle conns/host 2 (Go's default)", set: func(c *worker.Config) { c.HTTPMaxIdleConnsPerHost = 2 }, workers: 100, messages: 4000},
		}},
		{"settings/drain 100 ms", []settingsCase{
			{name: "as configured, 25 workers", set: ours, workers: 25, latency: 100 * time.Millisecond, messages: 2000},
			{name: "River defaults, 25 workers", set: river, workers: 25, latency: 100 * time.Millisecond, messages: 2000},
			{name: "cooldown 2ms, poll 50ms, 25 workers", set: fast, workers: 25, latency: 100 * time.Millisecond, messages: 2000},
		}},
		{"settings/latency 200/s", []settingsCase{
			{name: "as configured", set: ours, workers: 100, rate: 200},
			{name: "River defaults", set: river, workers: 100, rate: 200},
			{name: "cooldown 5ms, poll 100ms", set: func(c *worker.Config) {
				c.FetchCooldown, c.FetchPollInterval = 5*time.Millisecond, 100*time.Millisecond
			}, workers: 100, rate: 200},
			{name: "cooldown 2ms, poll 50ms", set: fast, workers: 100, rate: 200},
		}},
	}
	base := e.cfg.Worker
	defer func() { e.cfg.Worker = base }()
	const rounds = 2 // cases take turns, so that a slow minute hurts all alike
	for _, g := range groups {
		type acc struct {
			res   Result
			rates []float64
			lat   Latencies
		}
		accs := make([]acc, len(g.cases))
		for round := range rounds {
			for i, c := range g.cases {
				res, lat, err := settingsRun(ctx, e, base, g.name, c)
				if err != nil {
					return err
				}
				e.logf("settings: round %d, %s — %s: %.0f/s", round+1, g.name, c.name, res.Throughput)
				accs[i].res = res
				accs[i].rates = append(accs[i].rates, res.Throughput)
				if lat != nil {
					accs[i].lat.Merge(lat)
				}
			}
		}
		for i, c := range g.cases {
			res := accs[i].res
			sum := 0.0
			for _, r := range accs[i].rates {
				sum += r
			}
			res.Throughput = sum / float64(len(accs[i].rates))
			if c.rate > 0 {
				res.Latency = accs[i].lat.Summary()
				res.Latency2 = nil
			}
			res.Scenario, res.Group, res.Baseline = ScenarioSettings, g.name, i == 0
			res.Case = fmt.Sprintf("%s: %s", g.name, c.name)
			res.Note = fmt.Sprintf("mean of %d interleaved runs: %s; %s", rounds, fmtRates(accs[i].rates), res.Note)
			e.report.Results = append(e.report.Results, res)
		}
		compare(e.report.Results, g.name)
	}
	return nil
}

// settingsRun measures one case once.
func settingsRun(ctx context.Context, e *env, base worker.Config, group string, c settingsCase) (Result, *Latencies, error) {
	if err := e.reset(ctx); err != nil {
		return Result{}, nil, err
	}
	p, err := startProvider()
	if err != nil {
		return Result{}, nil, err
	}
	defer p.close()
	e.cfg.Worker = base
	c.set(&e.cfg.Worker)
	p.sandbox.SetChaos(twiliosandbox.Chaos{Latency: c.latency})
	p.take()
	if c.rate > 0 {
		before := len(e.report.Results)
		saved, savedWorkers := e.cfg.E2E, e.cfg.Workers
		e.cfg.E2E.LatencyDuration, e.cfg.Workers = 5*time.Second, c.workers
		err := e2eLatency(startSMS, "", nil, 0, c.rate, group, false)(ctx, e, p)
		e.cfg.E2E, e.cfg.Workers = saved, savedWorkers
		if err != nil {
			return Result{}, nil, err
		}
		res := e.report.Results[before]
		e.report.Results = e.report.Results[:before]
		lat := &Latencies{}
		lat.d = res.rawLatency
		return res, lat, nil
	}
	if _, err := insertMessages(ctx, e, c.messages, "settings"); err != nil {
		return Result{}, nil, err
	}
	p.take()
	resetPeakRSS()
	r, err := startSMS(ctx, e, p, c.workers, 0)
	if err != nil {
		return Result{}, nil, err
	}
	err = waitFor(ctx, r.pool, "messages accepted", c.messages, drainTimeout(c.messages, 50), countAccepted)
	rss := peakRSS()
	r.stop()
	if err != nil {
		return Result{}, nil, err
	}
	res, err := drainResult(ctx, e, p, c.messages)
	if err != nil {
		return Result{}, nil, err
	}
	res.PeakRSS, res.RSSOf = rss, "bench, in-process worker"
	if c.latency > 0 {
		res.Note += fmt.Sprintf("expected %.0f/s; ", float64(c.workers)/c.latency.Seconds())
	}
	return res, nil, nil
}

func fmtRates(r []float64) string {
	s := ""
	for i, v := range r {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.0f/s", v)
	}
	return s
}
