package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// SoakConfig is the soak scenario: a steady rate well below saturation for
// long enough that bloat and autovacuum would show.
type SoakConfig struct {
	Duration time.Duration
	Rate     int
	// Window is the reporting interval; Warmup runs first, unreported.
	Window time.Duration
	Warmup time.Duration
}

func (c *SoakConfig) defaults() {
	if c.Duration <= 0 {
		c.Duration = time.Minute
	}
	if c.Rate <= 0 {
		c.Rate = 300
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.Warmup <= 0 {
		c.Warmup = 3 * time.Second
	}
}

type tableStats struct {
	jobDead, jobLive, jobBytes, msgDead, autovacuums int64
}

func runSoak(ctx context.Context, e *env) error {
	cfg := e.cfg.Soak
	e.logf("soak: %d/s for %s (+%s warm-up), 0 ms provider, %d workers", cfg.Rate, cfg.Duration, cfg.Warmup, e.cfg.Workers)
	p, err := startProvider()
	if err != nil {
		return err
	}
	defer p.close()
	p.sandbox.SetChaos(twiliosandbox.Chaos{})
	resetPeakRSS()
	r, err := startSMS(ctx, e, p, e.cfg.Workers, 0)
	if err != nil {
		return err
	}
	defer r.stop()
	app, err := e.pool(ctx, appSessions, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	stats, err := e.pool(ctx, 1, nil)
	if err != nil {
		return err
	}
	defer stats.Close()

	c := &commits{at: map[int64]time.Time{}}
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	var (
		wg      sync.WaitGroup
		sent    int64
		sendErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent, sendErr = offer(ctx, cfg.Rate, cfg.Warmup+cfg.Duration, appSessions, func(ctx context.Context, n int64) error {
			var id int64
			key := "bench-" + e.runID + "-soak-" + strconv.FormatInt(n, 10)
			err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
				if err := insertDomain(ctx, tx, n); err != nil {
					return err
				}
				return tx.QueryRow(ctx, "SELECT switchboard.send_sms($1, $2, $3, $4)", key, benchTo(n), benchBody,
					"patient-"+strconv.FormatInt(n%5000, 10)).Scan(&id)
			})
			if err == nil {
				c.add(id, time.Now())
			}
			return err
		})
	}()

	windows := int(cfg.Duration / cfg.Window)
	samples := make([]tableStats, windows)
	for w := range windows {
		if err := sleep(ctx, time.Until(measureFrom.Add(time.Duration(w+1)*cfg.Window))); err != nil {
			wg.Wait()
			return err
		}
		s, err := sampleTables(ctx, stats)
		if err != nil {
			wg.Wait()
			return err
		}
		samples[w] = s
	}
	wg.Wait()
	if sendErr != nil {
		return sendErr
	}
	if err := waitFor(ctx, r.pool, "messages accepted", int(sent), time.Minute, countAccepted); err != nil {
		return err
	}
	rss := peakRSS()
	arrivals := p.take()

	lats := make([]Latencies, windows)
	var all Latencies
	for id, t := range c.at {
		a, ok := arrivals[id]
		if !ok || t.Before(measureFrom) {
			continue
		}
		w := int(t.Sub(measureFrom) / cfg.Window)
		if w >= windows {
			continue
		}
		lats[w].Add(a[0].Sub(t))
		all.Add(a[0].Sub(t))
	}
	for w := range windows {
		s := samples[w]
		e.report.Windows = append(e.report.Windows, Window{
			Start: Duration(time.Duration(w) * cfg.Window), Latency: lats[w].Summary(),
			JobDeadTup: s.jobDead, JobLiveTup: s.jobLive, JobBytes: s.jobBytes, MsgDeadTup: s.msgDead, Autovacuums: s.autovacuums,
		})
	}
	e.report.Results = append(e.report.Results, Result{
		Scenario: ScenarioSoak, Group: ScenarioSoak,
		Case:       fmt.Sprintf("send_sms at %d/s for %s: commit → provider", cfg.Rate, cfg.Duration),
		Throughput: float64(sent) / (cfg.Warmup + cfg.Duration).Seconds(), Latency: all.Summary(), PeakRSS: rss, RSSOf: "bench, in-process worker",
		Note: fmt.Sprintf("%d sent twice at the provider", duplicates(arrivals)),
	})
	if windows >= 2 {
		ws := e.report.Windows[len(e.report.Windows)-windows:]
		first, last := ws[0], ws[len(ws)-1]
		p99s := make([]float64, len(ws))
		for i, w := range ws {
			p99s[i] = w.Latency.P99
		}
		slices.Sort(p99s)
		if first.Latency.P99 > 0 {
			detail := fmt.Sprintf("%.1f ms vs %.1f ms (windows' p99 from %.1f to %.1f ms); job table %.1f MiB, %d dead tuples at the end",
				last.Latency.P99, first.Latency.P99, p99s[0], p99s[len(p99s)-1], float64(last.JobBytes)/(1<<20), last.JobDeadTup)
			if first.Latency.P99 > 2*p99s[len(p99s)/2] {
				detail += "; the first window was unusually slow, so this ratio flatters: rerun"
			}
			e.report.Targets = append(e.report.Targets, Target{
				Name: "soak: p99 commit → provider, last window vs first", Met: last.Latency.P99 <= 2*first.Latency.P99,
				Measured: last.Latency.P99 / first.Latency.P99, Limit: "≤ 2×", Detail: detail,
			})
		}
	}
	return nil
}

func sampleTables(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (tableStats, error) {
	var s tableStats
	err := db.QueryRow(ctx, `SELECT j.n_dead_tup, j.n_live_tup, pg_total_relation_size('switchboard.river_job'),
			m.n_dead_tup, j.autovacuum_count
		FROM pg_stat_user_tables j, pg_stat_user_tables m
		WHERE j.relid = 'switchboard.river_job'::regclass AND m.relid = 'switchboard.messages'::regclass`).
		Scan(&s.jobDead, &s.jobLive, &s.jobBytes, &s.msgDead, &s.autovacuums)
	return s, err
}
