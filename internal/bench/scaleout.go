package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// ScaleOutConfig is the scale-out scenario: `switchboard worker`
// processes on one database, with a slow provider so that concurrency, not
// the database, bounds each process.
type ScaleOutConfig struct {
	Processes         []int
	WorkersPerProcess int
	ProviderLatency   time.Duration
	// Duration sizes each run: the messages that many processes send in
	// about that long.
	Duration time.Duration
}

func (c *ScaleOutConfig) defaults() {
	if len(c.Processes) == 0 {
		c.Processes = []int{1, 2, 3}
	}
	if c.WorkersPerProcess <= 0 {
		c.WorkersPerProcess = 16
	}
	if c.ProviderLatency <= 0 {
		c.ProviderLatency = 100 * time.Millisecond
	}
	if c.Duration <= 0 {
		c.Duration = 8 * time.Second
	}
}

const groupScaleOut = "scaleout"

func runScaleOut(ctx context.Context, e *env) error {
	cfg := e.cfg.ScaleOut
	if e.cfg.WorkerBinary == "" {
		return errors.New("no worker binary was given")
	}
	p, err := startProvider()
	if err != nil {
		return err
	}
	defer p.close()
	p.sandbox.SetChaos(twiliosandbox.Chaos{Latency: cfg.ProviderLatency})

	var totalDup, totalAttemptsDup, totalLost int
	for i, procs := range cfg.Processes {
		if i > 0 {
			if err := e.reset(ctx); err != nil {
				return err
			}
		}
		perProcess := float64(cfg.WorkersPerProcess) / cfg.ProviderLatency.Seconds()
		n := int(float64(procs) * perProcess * cfg.Duration.Seconds())
		e.logf("scaleout: %d worker processes × %d workers, %s provider, %d messages", procs, cfg.WorkersPerProcess, cfg.ProviderLatency, n)
		if _, err := insertMessages(ctx, e, n, "scale"+strconv.Itoa(procs)); err != nil {
			return err
		}
		p.take()
		res, dup, attemptsDup, lost, err := scaleOutRun(ctx, e, p, procs, n)
		if err != nil {
			return err
		}
		totalDup += dup
		totalAttemptsDup += attemptsDup
		totalLost += lost
		res.Baseline = i == 0
		res.Note = fmt.Sprintf("expected %.0f/s; %d of %d sent; %d sent twice at the provider, %d with more than one attempt",
			float64(procs)*perProcess, n-lost, n, dup, attemptsDup)
		e.report.Results = append(e.report.Results, res)
	}
	compare(e.report.Results, groupScaleOut)

	var one, most *Result
	for i := range e.report.Results {
		r := &e.report.Results[i]
		if r.Group != groupScaleOut {
			continue
		}
		if r.Baseline {
			one = r
		}
		if most == nil || r.Clients > most.Clients {
			most = r
		}
	}
	if one != nil && most != nil && most != one && one.Clients == 1 {
		want := 2.5 * float64(most.Clients) / 3
		e.report.Targets = append(e.report.Targets, Target{
			Name:     fmt.Sprintf("scaleout: %d processes vs 1, throughput", most.Clients),
			Met:      most.ThroughputRatio >= want,
			Measured: most.ThroughputRatio, Limit: fmt.Sprintf("≥ %.2f×", want),
			Detail: fmt.Sprintf("%.0f vs %.0f per s, %d workers per process, %s provider",
				most.Throughput, one.Throughput, cfg.WorkersPerProcess, cfg.ProviderLatency),
		})
	}
	e.report.Targets = append(e.report.Targets, Target{
		Name: "scaleout: messages sent twice (provider requests per message > 1, or more than one attempt row)",
		Met:  totalDup == 0 && totalAttemptsDup == 0 && totalLost == 0, Measured: float64(totalDup + totalAttemptsDup),
		Limit: "0", Detail: fmt.Sprintf("%d at the provider, %d in message_attempts, %d not sent, over every run", totalDup, totalAttemptsDup, totalLost),
	})
	return nil
}

// scaleOutRun starts procs worker processes on a backlog of n messages,
// waits until every message has its provider id, and stops them.
func scaleOutRun(ctx context.Context, e *env, p *provider, procs, n int) (res Result, dup, attemptsDup, lost int, err error) {
	cfg := e.cfg.ScaleOut
	w := e.cfg.Worker
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + e.url,
		"WORKER_ADDR=127.0.0.1:0",
		"WORKER_METRICS_ADDR=127.0.0.1:0",
		"WORKER_QUEUES=sms=" + strconv.Itoa(cfg.WorkersPerProcess),
		"WORKER_FETCH_COOLDOWN=" + w.FetchCooldown.String(),
		"WORKER_FETCH_POLL_INTERVAL=" + w.FetchPollInterval.String(),
		"WORKER_DB_MAX_CONNS=" + strconv.Itoa(int(w.DBMaxConns)),
		"WORKER_SHUTDOWN_TIMEOUT=10s",
		"DEST_TWILIO_MAX_CONCURRENT=" + strconv.Itoa(cfg.WorkersPerProcess),
		"TWILIO_ACCOUNT_SID=" + sandboxSID,
		"TWILIO_AUTH_TOKEN=" + sandboxToken,
		"TWILIO_FROM_NUMBER=" + sandboxFrom,
		"TWILIO_API_BASE_URL=" + p.url,
		"PUBLIC_BASE_URL=" + callbackBase,
		"LOG_FORMAT=json",
		"LOG_LEVEL=warn",
	}
	if w.HTTPMaxIdleConnsPerHost > 0 {
		env = append(env, "WORKER_HTTP_MAX_IDLE_PER_HOST="+strconv.Itoa(w.HTTPMaxIdleConnsPerHost))
	}
	type child struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
	}
	children := make([]*child, procs)
	stopAll := func() {
		for _, c := range children {
			if c != nil && c.cmd.Process != nil {
				_ = c.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, c := range children {
			if c == nil || c.cmd.Process == nil {
				continue
			}
			done := make(chan struct{})
			go func() { _ = c.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = c.cmd.Process.Kill()
				<-done
			}
		}
	}
	for i := range children {
		c := &child{cmd: exec.Command(e.cfg.WorkerBinary, "worker")}
		c.cmd.Env = env
		c.cmd.Stderr = &c.stderr
		if err := c.cmd.Start(); err != nil {
			stopAll()
			return res, 0, 0, 0, fmt.Errorf("error starting a worker process: %w", err)
		}
		children[i] = c
	}
	pool, err := e.pool(ctx, 1, nil)
	if err != nil {
		stopAll()
		return res, 0, 0, 0, err
	}
	defer pool.Close()
	expected := float64(procs*cfg.WorkersPerProcess) / cfg.ProviderLatency.Seconds()
	waitErr := waitFor(ctx, pool, "messages accepted", n, drainTimeout(n, expected/4), countAccepted)
	var rss int64
	for _, c := range children {
		rss = max(rss, processPeakRSS(strconv.Itoa(c.cmd.Process.Pid)))
	}
	stopAll()
	if waitErr != nil {
		var logs []string
		for _, c := range children {
			if s := strings.TrimSpace(c.stderr.String()); s != "" {
				logs = append(logs, lastLines(s, 5))
			}
		}
		return res, 0, 0, 0, fmt.Errorf("%w; worker logs: %s", waitErr, strings.Join(logs, " | "))
	}
	arrivals := p.take()
	acc, err := acceptedAt(ctx, pool)
	if err != nil {
		return res, 0, 0, 0, err
	}
	times := make([]time.Time, 0, len(acc))
	for _, t := range acc {
		times = append(times, t)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT message_id FROM switchboard.message_attempts
		GROUP BY message_id HAVING count(*) > 1) d`).Scan(&attemptsDup); err != nil {
		return res, 0, 0, 0, err
	}
	res = Result{
		Scenario: ScenarioScaleOut, Group: groupScaleOut, Clients: procs,
		Case:       fmt.Sprintf("%d × switchboard worker (sms=%d), %s provider", procs, cfg.WorkersPerProcess, cfg.ProviderLatency),
		Throughput: spanRate(times), PeakRSS: rss, RSSOf: "largest worker",
	}
	return res, duplicates(arrivals), attemptsDup, n - len(arrivals), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
