// Package resilience puts every call to an external destination (a vendor,
// or one EHR endpoint) through one policy stack built on failsafe-go, so an
// outage, a throttle or a slow vendor never burns retries, floods a vendor
// or starves other queues.
//
// # The stack
//
// Outermost first: an optional short retry (idempotent requests only), a
// circuit breaker (failure rate over a time window, half-open probes), a
// bulkhead (max concurrent calls per process) and a request timeout. The
// caller's classify function decides which errors count as the destination
// failing (5xx, timeouts, connection errors): a recipient's invalid number
// or a 429 says the destination works.
//
// # Outcomes
//
// A call that cannot be made now — breaker open, destination paused by an
// operator, bulkhead full — returns an *UnavailableError with RetryAfter:
// the time until the breaker half-opens plus jitter, so replicas do not
// stampede. Workers snooze the River job for that long (no attempt spent) and
// give up into a dead letter of class unavailable only after the kind's
// limit (Snooze).
//
// # Health
//
// Every outcome is counted in memory and merged into
// switchboard.destination_health every few seconds by Registry.Run.
//
// # Pauses and holds
//
// An operator's pause is read from that table before every job starts
// (Registry.Hook; jobs starting together share one read), so a pause
// committed before a job starts always holds it. A held job snoozes through
// HoldFor, which writes hold_reason, hold_destination and hold_until into
// its metadata for River UI; resuming a destination makes the jobs its
// pause held available at once (a trigger, migration 00065).
package resilience

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sethvargo/go-envconfig"
)

// Settings configure one destination. Each field can be overridden per
// destination by DEST_<NAME>_<FIELD>, e.g. DEST_TWILIO_BREAKER_OPEN_FOR=1m
// (NAME upper-cased, other characters as _).
type Settings struct {
	// Timeout bounds one call.
	Timeout time.Duration `env:"TIMEOUT, default=15s"`
	// The breaker opens when at least BreakerMinCalls calls in
	// BreakerWindow failed at BreakerFailureRate or more.
	BreakerFailureRate float64       `env:"BREAKER_FAILURE_RATE, default=0.5"`
	BreakerMinCalls    uint          `env:"BREAKER_MIN_CALLS, default=10"`
	BreakerWindow      time.Duration `env:"BREAKER_WINDOW, default=1m"`
	// BreakerOpenFor is how long it stays open before letting
	// BreakerHalfOpenCalls probe calls through.
	BreakerOpenFor       time.Duration `env:"BREAKER_OPEN_FOR, default=30s"`
	BreakerHalfOpenCalls uint          `env:"BREAKER_HALF_OPEN_CALLS, default=3"`
	// BreakerConsecutiveFailures opens the breaker after that many failures
	// in a row whatever the window holds: a sudden outage at high volume
	// would otherwise need as many failures as the window has successes
	// before the rate threshold trips. 0 disables.
	BreakerConsecutiveFailures uint `env:"BREAKER_CONSECUTIVE_FAILURES, default=10"`
	// MaxConcurrent calls per process; a full bulkhead waits BulkheadWait,
	// then the job snoozes briefly.
	MaxConcurrent uint          `env:"MAX_CONCURRENT, default=200"`
	BulkheadWait  time.Duration `env:"BULKHEAD_WAIT, default=2s"`
	// Retries is the in-call retry budget for idempotent requests (reads,
	// lookups); non-idempotent ones are never retried in-call.
	Retries uint `env:"RETRIES, default=1"`
	// RateLimit is the distributed limit (e.g. "1/s"), applied by the caller
	// per sub-key through internal/ratelimit; empty means none.
	RateLimit string `env:"RATE_LIMIT"`
}

var nonAlnum = regexp.MustCompile(`[^A-Z0-9]+`)

// EnvPrefix is the prefix of a destination's override variables.
func EnvPrefix(name string) string {
	return "DEST_" + nonAlnum.ReplaceAllString(strings.ToUpper(name), "_") + "_"
}

// LoadSettings reads a destination's settings from the environment: the
// defaults above, overridden by DEST_<NAME>_* variables. It returns an error
// naming a malformed variable.
func LoadSettings(ctx context.Context, name string) (Settings, error) {
	return LoadSettingsFrom(ctx, name, envconfig.OsLookuper())
}

// LoadSettingsFrom is LoadSettings with another source of variables.
func LoadSettingsFrom(ctx context.Context, name string, l envconfig.Lookuper) (Settings, error) {
	var s Settings
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   &s,
		Lookuper: envconfig.PrefixLookuper(EnvPrefix(name), l),
	}); err != nil {
		return s, fmt.Errorf("destination %s settings: %w", name, err)
	}
	if s.BreakerFailureRate <= 0 || s.BreakerFailureRate > 1 {
		return s, fmt.Errorf("%sBREAKER_FAILURE_RATE must be in (0, 1]", EnvPrefix(name))
	}
	if s.Timeout <= 0 || s.BreakerWindow <= 0 || s.BreakerOpenFor <= 0 {
		return s, fmt.Errorf("%sTIMEOUT, BREAKER_WINDOW and BREAKER_OPEN_FOR must be positive", EnvPrefix(name))
	}
	if s.MaxConcurrent == 0 || s.BreakerMinCalls == 0 || s.BreakerHalfOpenCalls == 0 {
		return s, fmt.Errorf("%sMAX_CONCURRENT, BREAKER_MIN_CALLS and BREAKER_HALF_OPEN_CALLS must be at least 1", EnvPrefix(name))
	}
	return s, nil
}

// Outcome is what a call's result says about the destination.
type Outcome int

// Outcomes a classify function returns.
const (
	// Healthy: the destination answered (success, or an answer about our
	// request such as an invalid number or a 429).
	Healthy Outcome = iota
	// Failing: 5xx, timeout, connection error — counts toward the breaker.
	Failing
)

// Reasons of an UnavailableError.
const (
	ReasonBreakerOpen = "breaker_open"
	ReasonPaused      = "paused"
	ReasonBusy        = "bulkhead_full"
	// ReasonUnconfigured: the destination's credentials are missing or
	// placeholders (RegisterUnconfigured); only a restart with settings
	// changes that.
	ReasonUnconfigured = "unconfigured"
)

// unconfiguredRetry is how long a job holds for an unconfigured
// destination before it looks again (plus jitter).
const unconfiguredRetry = 5 * time.Minute

// UnavailableError means the destination was not called: its breaker is
// open, an operator paused it, or this process's bulkhead is full.
type UnavailableError struct {
	Destination string
	Reason      string
	RetryAfter  time.Duration
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("destination %s unavailable (%s); retry in %s", e.Destination, e.Reason, e.RetryAfter.Round(time.Millisecond))
}

// Destination is one destination's policy stack. It is safe for concurrent use.
type Destination struct {
	name      string
	settings  Settings
	breaker   circuitbreaker.CircuitBreaker[any] // failure rate over a window
	streak    circuitbreaker.CircuitBreaker[any] // consecutive failures; nil if disabled
	bulkhead  bulkhead.Bulkhead[any]
	classify  func(error) Outcome
	exec      failsafe.Executor[any]
	execRetry failsafe.Executor[any]
	health    *Registry
	paused    atomic.Bool
	// unconfigured says why the destination cannot be called at all; empty
	// for a configured one.
	unconfigured string
	lastCall     atomic.Int64 // unix nanos of the last call that reached the destination
	// writesOnly: idempotent calls (look-ups) do not count toward the
	// breakers while they are closed (CountWritesOnly).
	writesOnly bool
	execRead   failsafe.Executor[any] // bulkhead and timeout (and retry), no breakers
}

// CountWritesOnly makes the breakers count only calls that are not
// idempotent (sends), and returns d. A destination whose reads keep working
// while its writes fail (a provider answering 500 to every send while its
// list endpoint works) would otherwise have its breaker held closed by the
// successful look-ups, and its jobs would never fail over. While a breaker
// is not closed an idempotent call is still its trial call (the probe).
// Call it once, right after Register, before any call.
func (d *Destination) CountWritesOnly() *Destination {
	d.writesOnly = true
	return d
}

// Name returns the destination's name.
func (d *Destination) Name() string { return d.name }

// Settings returns the destination's settings.
func (d *Destination) Settings() Settings { return d.settings }

// jitter spreads replicas' retries over up to a fifth of d, at least 1 s.
func jitter(d time.Duration) time.Duration {
	span := max(d/5, time.Second)
	return d + time.Duration(rand.Int64N(int64(span)))
}

// Ready reports, without calling, whether a call would be refused now. It
// returns an *UnavailableError when the destination is paused or its breaker
// is open, and nil otherwise. Workers ask before recording an attempt.
func (d *Destination) Ready() error {
	if d.unconfigured != "" {
		return &UnavailableError{Destination: d.name, Reason: ReasonUnconfigured, RetryAfter: jitter(unconfiguredRetry)}
	}
	if d.paused.Load() {
		return &UnavailableError{Destination: d.name, Reason: ReasonPaused, RetryAfter: jitter(30 * time.Second)}
	}
	// failsafe moves an open breaker to half-open lazily, on the next
	// permit request: an open breaker whose delay has passed is ready.
	for _, b := range d.breakers() {
		if b.IsOpen() {
			if rem := b.RemainingDelay(); rem > 0 {
				return &UnavailableError{Destination: d.name, Reason: ReasonBreakerOpen, RetryAfter: jitter(rem)}
			}
		}
	}
	return nil
}

func (d *Destination) breakers() []circuitbreaker.CircuitBreaker[any] {
	if d.streak == nil {
		return []circuitbreaker.CircuitBreaker[any]{d.breaker}
	}
	return []circuitbreaker.CircuitBreaker[any]{d.streak, d.breaker}
}

// Call runs fn through the destination's stack. idempotent allows the short
// in-call retry. Call returns fn's own error — even when the stack's timeout
// fired first, fn's error says what happened to the request — or an
// *UnavailableError when fn was not run.
func (d *Destination) Call(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	if err := d.Ready(); err != nil {
		d.health.observe(d.name, "unavailable")
		return err
	}
	exec := d.exec
	if idempotent && d.execRetry != nil {
		exec = d.execRetry
	}
	if idempotent && d.writesOnly && d.BreakerState() == "closed" {
		exec = d.execRead
	}
	var (
		ran   bool
		fnErr error
	)
	start := time.Now()
	err := exec.WithContext(ctx).RunWithExecution(func(e failsafe.Execution[any]) error {
		ran = true
		d.lastCall.Store(time.Now().UnixNano())
		fnErr = fn(e.Context())
		return fnErr
	})
	if !ran {
		d.health.observe(d.name, "unavailable")
		switch {
		case errors.Is(err, bulkhead.ErrFull):
			return &UnavailableError{Destination: d.name, Reason: ReasonBusy, RetryAfter: jitter(time.Second)}
		case errors.Is(err, circuitbreaker.ErrOpen):
			var rem time.Duration
			for _, b := range d.breakers() {
				rem = max(rem, b.RemainingDelay())
			}
			return &UnavailableError{Destination: d.name, Reason: ReasonBreakerOpen, RetryAfter: jitter(rem)}
		}
		return err
	}
	healthy := fnErr == nil || d.classify(fnErr) == Healthy
	class := "ok"
	switch {
	case fnErr == nil:
	case healthy:
		class = "answered_error"
	default:
		class = "failing"
	}
	d.health.record(d.name, healthy, class, time.Since(start))
	return fnErr
}

// Idle reports whether no call reached the destination within d.
func (dst *Destination) Idle(d time.Duration) bool {
	last := dst.lastCall.Load()
	return last == 0 || time.Since(time.Unix(0, last)) > d
}

// BreakerState returns closed, half-open or open: the worse of the rate
// and the consecutive-failure breakers.
func (d *Destination) BreakerState() string {
	worst := circuitbreaker.ClosedState
	for _, b := range d.breakers() {
		switch st := b.State(); {
		case st == circuitbreaker.OpenState:
			worst = st
		case st == circuitbreaker.HalfOpenState && worst != circuitbreaker.OpenState:
			worst = st
		}
	}
	return stateName(worst)
}

// Registry holds the destinations of one process and their health.
type Registry struct {
	mu    sync.Mutex
	dests map[string]*Destination
	stats map[string]*pending
	store HealthStore
	// pauses shares the pause reads of jobs that start together (Hook).
	pauses pauseReads
}

// New returns an empty registry that flushes health to store (nil: keep
// counting in memory only).
func New(store HealthStore) *Registry {
	return &Registry{dests: map[string]*Destination{}, stats: map[string]*pending{}, store: store}
}

// Register adds a destination with its settings and the function that tells
// which errors mean the destination is failing (they count toward its
// breaker), and returns it. Registering a name twice returns the first.
func (r *Registry) Register(name string, s Settings, classify func(error) Outcome) *Destination {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.dests[name]; ok {
		return d
	}
	d := &Destination{name: name, settings: s, health: r, classify: classify}
	failing := func(_ any, err error) bool {
		if err == nil || errors.Is(err, circuitbreaker.ErrOpen) || errors.Is(err, bulkhead.ErrFull) {
			return false
		}
		return errors.Is(err, timeout.ErrExceeded) || classify(err) == Failing
	}
	changed := func(circuitbreaker.StateChangedEvent) { r.breakerChanged(name, d.BreakerState()) }
	d.breaker = circuitbreaker.NewBuilder[any]().
		HandleIf(failing).
		WithFailureRateThreshold(s.BreakerFailureRate, s.BreakerMinCalls, s.BreakerWindow).
		WithDelay(s.BreakerOpenFor).
		WithSuccessThreshold(s.BreakerHalfOpenCalls).
		OnStateChanged(changed).
		Build()
	if s.BreakerConsecutiveFailures > 0 {
		d.streak = circuitbreaker.NewBuilder[any]().
			HandleIf(failing).
			WithFailureThreshold(s.BreakerConsecutiveFailures).
			WithDelay(s.BreakerOpenFor).
			WithSuccessThreshold(s.BreakerHalfOpenCalls).
			OnStateChanged(changed).
			Build()
	}
	d.bulkhead = bulkhead.NewBuilder[any](s.MaxConcurrent).WithMaxWaitTime(s.BulkheadWait).Build()
	to := timeout.New[any](s.Timeout)
	guards := []failsafe.Policy[any]{}
	if d.streak != nil {
		guards = append(guards, d.streak)
	}
	guards = append(guards, d.breaker, d.bulkhead, to)
	d.exec = failsafe.With[any](guards...)
	d.execRead = failsafe.With[any](d.bulkhead, to)
	if s.Retries > 0 {
		retry := retrypolicy.NewBuilder[any]().
			HandleIf(failing).
			AbortOnErrors(context.Canceled).
			WithMaxRetries(int(s.Retries)).
			WithBackoff(100*time.Millisecond, time.Second).
			WithJitterFactor(0.2).
			ReturnLastFailure().
			Build()
		d.execRetry = failsafe.With[any](append([]failsafe.Policy[any]{retry}, guards...)...)
		d.execRead = failsafe.With[any](retry, d.bulkhead, to)
	}
	r.dests[name] = d
	breakerGauge.WithLabelValues(name).Set(0)
	configuredGauge.WithLabelValues(name).Set(1)
	return d
}

// RegisterUnconfigured adds a destination that is never called because its
// settings cannot work (missing or placeholder credentials; problem says
// which, without secret values). Its jobs hold — snooze with reason
// unconfigured, no attempt spent — up to their kind's unavailable limit,
// and the destination's health records the class unconfigured, so an
// operator sees it in `switchboard destination list` and on /metrics
// instead of a process that exits and restarts in a loop.
func (r *Registry) RegisterUnconfigured(name, problem string) *Destination {
	s, _ := LoadSettingsFrom(context.Background(), name, envconfig.MapLookuper(nil))
	d := r.Register(name, s, func(error) Outcome { return Healthy })
	r.mu.Lock()
	defer r.mu.Unlock()
	d.unconfigured = problem
	p := r.stat(name)
	p.lastFailure = time.Now()
	p.lastFailureClass = ReasonUnconfigured
	configuredGauge.WithLabelValues(name).Set(0)
	return d
}

// Unconfigured returns why the destination cannot be called, or "".
func (d *Destination) Unconfigured() string { return d.unconfigured }

// Get returns the named destination, or nil.
func (r *Registry) Get(name string) *Destination {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dests[name]
}

// Destinations returns every registered destination.
func (r *Registry) Destinations() []*Destination {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Destination, 0, len(r.dests))
	for _, d := range r.dests {
		out = append(out, d)
	}
	return out
}

func stateName(s circuitbreaker.State) string {
	switch s {
	case circuitbreaker.OpenState:
		return "open"
	case circuitbreaker.HalfOpenState:
		return "half-open"
	default:
		return "closed"
	}
}
