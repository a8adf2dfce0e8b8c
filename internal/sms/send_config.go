package sms

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// Config is the messaging domain's configuration.
type Config struct {
	// PublicBaseURL is where providers reach the api: status callbacks go to
	// PublicBaseURL + /webhooks/<provider>/status?m=<message id>.
	PublicBaseURL string `env:"PUBLIC_BASE_URL"`
	// InFlightGrace is how long an attempt without a known outcome (none
	// yet, or ambiguous) is presumed to still be in flight — in another
	// process, or queued at the provider's edge. A younger one makes the job
	// wait instead of reconciling. At least SendTimeout.
	InFlightGrace time.Duration `env:"SMS_INFLIGHT_GRACE, default=30s"`
	// SendTimeout bounds one sms_send job. InFlightGrace is raised to it
	// (with a warning) when configured shorter.
	SendTimeout time.Duration `env:"SMS_SEND_TIMEOUT, default=30s"`
	// QuietHours ("21:00-08:00", local to the message's time_zone) holds app
	// messages until the window ends; empty disables.
	QuietHours QuietHours `env:"SMS_QUIET_HOURS"`
	// BatchSize is how many concurrently running sms_send jobs may share
	// one transaction to claim their messages, and one to record what the
	// provider accepted (default 256). 1 gives every job transactions of
	// its own.
	BatchSize int `env:"SMS_BATCH_SIZE, default=256"`
	// UnavailableLimit is job_kinds.unavailable_limit of sms_send, set by
	// NewSendWorker.
	UnavailableLimit time.Duration
}

// SendDeps are what a SendWorker calls.
type SendDeps struct {
	// Providers in order of preference (SMS_PROVIDERS).
	Providers []Provider
	// UnavailableLimit is how long a message may wait for unavailable
	// providers (breaker open, paused) before it becomes a dead letter of
	// class unavailable (job_kinds.unavailable_limit).
	UnavailableLimit time.Duration
}

// NewSendWorker returns a worker that sends through deps.Providers.
func NewSendWorker(cfg Config, pool *pgxpool.Pool, deps SendDeps, logger *slog.Logger) *SendWorker {
	if cfg.InFlightGrace <= 0 {
		cfg.InFlightGrace = 30 * time.Second
	}
	if cfg.SendTimeout > 0 && cfg.InFlightGrace < cfg.SendTimeout {
		// A run may hold its request for up to the send timeout: a grace
		// shorter than that would look up a message still on its way.
		logger.Warn("SMS_INFLIGHT_GRACE is shorter than SMS_SEND_TIMEOUT; using SMS_SEND_TIMEOUT",
			slog.Duration("configured", cfg.InFlightGrace), slog.Duration("using", cfg.SendTimeout))
		cfg.InFlightGrace = cfg.SendTimeout
	}
	if deps.UnavailableLimit > 0 {
		cfg.UnavailableLimit = deps.UnavailableLimit
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	w := &SendWorker{cfg: cfg, pool: pool, providers: deps.Providers, logger: logger, q: db.New()}
	w.claims = newGroup(cfg.BatchSize, w.claimBatch)
	w.claims.observe = observeBatches("claim")
	w.accepts = newGroup(cfg.BatchSize, w.acceptBatch)
	// Results are off the path to the provider: one lane makes the largest
	// batches (measured: 7% more throughput than two; claims keep two, so
	// that a lone message is claimed at once).
	w.accepts.lanes = 1
	w.accepts.observe = observeBatches("result")
	return w
}

// Timeout bounds one run of the job.
func (w *SendWorker) Timeout(*river.Job[jobs.SMSSendArgs]) time.Duration {
	if w.cfg.SendTimeout > 0 {
		return w.cfg.SendTimeout
	}
	return time.Minute
}

// NextRetry spaces retries for SMS. Failures that reach here are
// transient and independent (a 5xx, a timeout, a look-up that failed): a
// provider that is down trips its breaker and its jobs are held without
// spending attempts, so a long wait early buys nothing and only delays a
// message whose next try would most likely succeed. The first six retries
// therefore come within 2.5 minutes of the first failure (the crash
// suite's convergence depends on it); after that the waits grow to half
// an hour, so ten attempts span about 50 minutes — by then a reminder is
// stale and an operator should look at the dead letter. An ambiguous
// attempt's next run also waits out the in-flight grace before it asks
// the provider (decide), whatever this says.
func (w *SendWorker) NextRetry(job *river.Job[jobs.SMSSendArgs]) time.Time {
	return time.Now().Add(RetryWait(len(job.Errors) + 1))
}

// smsRetryWaits is the wait after the n-th failed run (index n-1); runs
// past its end wait its last entry.
var smsRetryWaits = []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute}

// RetryWait is how long sms_send waits after its n-th failed run in a row
// (NextRetry's schedule, smsRetryWaits).
func RetryWait(n int) time.Duration {
	return smsRetryWaits[min(max(n-1, 0), len(smsRetryWaits)-1)]
}
