package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/resilience"
)

var errServer = errors.New("vendor answered 503")

func classify(err error) resilience.Outcome {
	if errors.Is(err, errServer) || errors.Is(err, context.DeadlineExceeded) {
		return resilience.Failing
	}
	return resilience.Healthy
}

func settings(t *testing.T, vars map[string]string) resilience.Settings {
	t.Helper()
	s, err := resilience.LoadSettingsFrom(context.Background(), "vendor", envconfig.MapLookuper(vars))
	require.NoError(t, err)
	return s
}

// vendor is a local HTTP server that fails while down is set and counts
// the requests that reach it.
type vendor struct {
	srv  *httptest.Server
	hits atomic.Int64
	down atomic.Bool
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		if v.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) call(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("error calling vendor: %w", errServer)
	}
	return nil
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	t.Parallel()
	v := newVendor(t)
	reg := resilience.New(nil)
	d := reg.Register("vendor", settings(t, map[string]string{
		"DEST_VENDOR_BREAKER_MIN_CALLS":       "4",
		"DEST_VENDOR_BREAKER_FAILURE_RATE":    "0.5",
		"DEST_VENDOR_BREAKER_OPEN_FOR":        "300ms",
		"DEST_VENDOR_BREAKER_HALF_OPEN_CALLS": "2",
	}), classify)
	ctx := context.Background()

	v.down.Store(true)
	for i := range 4 {
		err := d.Call(ctx, false, v.call)
		require.ErrorIs(t, err, errServer, "call %d reaches the vendor", i)
	}
	require.Equal(t, "open", d.BreakerState())
	require.EqualValues(t, 4, v.hits.Load())

	// While open, nothing reaches the vendor and callers learn when to come back.
	for range 10 {
		err := d.Call(ctx, false, v.call)
		var ue *resilience.UnavailableError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, resilience.ReasonBreakerOpen, ue.Reason)
		require.Greater(t, ue.RetryAfter, time.Duration(0))
	}
	require.EqualValues(t, 4, v.hits.Load(), "no request reached the vendor while open")
	require.Error(t, d.Ready())

	// After the delay the breaker half-opens; successful probes close it.
	v.down.Store(false)
	require.Eventually(t, func() bool { return d.Ready() == nil }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, d.Call(ctx, false, v.call))
	require.Equal(t, "half-open", d.BreakerState())
	require.NoError(t, d.Call(ctx, false, v.call))
	require.Equal(t, "closed", d.BreakerState())
}

func TestHealthyAnswersDoNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	reg := resilience.New(nil)
	d := reg.Register("vendor", settings(t, map[string]string{"DEST_VENDOR_BREAKER_MIN_CALLS": "2"}), classify)
	invalid := errors.New("invalid number")
	for range 20 {
		require.ErrorIs(t, d.Call(context.Background(), false, func(context.Context) error { return invalid }), invalid)
	}
	require.Equal(t, "closed", d.BreakerState())
}

func TestTimeoutReturnsTheCallsOwnError(t *testing.T) {
	t.Parallel()
	reg := resilience.New(nil)
	d := reg.Register("vendor", settings(t, map[string]string{"DEST_VENDOR_TIMEOUT": "50ms"}), classify)
	own := errors.New("request written, no answer")
	err := d.Call(context.Background(), false, func(ctx context.Context) error {
		<-ctx.Done() // the stack's timeout cancels the call's context
		return own
	})
	require.ErrorIs(t, err, own, "what happened to the request decides the outcome, not the timer")

	// A call that succeeded is a success even if the timer fired as it returned.
	err = d.Call(context.Background(), false, func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
	require.NoError(t, err)
}

func TestRetryOnlyForIdempotentCalls(t *testing.T) {
	t.Parallel()
	reg := resilience.New(nil)
	d := reg.Register("vendor", settings(t, map[string]string{"DEST_VENDOR_RETRIES": "2", "DEST_VENDOR_BREAKER_MIN_CALLS": "100"}), classify)
	var n atomic.Int32
	fail := func(context.Context) error { n.Add(1); return errServer }
	require.ErrorIs(t, d.Call(context.Background(), false, fail), errServer)
	require.EqualValues(t, 1, n.Load(), "a send is never retried in-call")
	n.Store(0)
	require.ErrorIs(t, d.Call(context.Background(), true, fail), errServer)
	require.EqualValues(t, 3, n.Load(), "a lookup is retried twice")
}

func TestBulkheadFullIsUnavailable(t *testing.T) {
	t.Parallel()
	reg := resilience.New(nil)
	d := reg.Register("vendor", settings(t, map[string]string{"DEST_VENDOR_MAX_CONCURRENT": "1", "DEST_VENDOR_BULKHEAD_WAIT": "10ms"}), classify)
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = d.Call(context.Background(), false, func(context.Context) error { close(started); <-release; return nil })
	}()
	<-started
	err := d.Call(context.Background(), false, func(context.Context) error { return nil })
	var ue *resilience.UnavailableError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, resilience.ReasonBusy, ue.Reason)
	close(release)
	wg.Wait()
}

func TestLoadSettingsRejectsBadValues(t *testing.T) {
	t.Parallel()
	for _, vars := range []map[string]string{
		{"DEST_VENDOR_BREAKER_FAILURE_RATE": "1.5"},
		{"DEST_VENDOR_TIMEOUT": "soon"},
		{"DEST_VENDOR_MAX_CONCURRENT": "0"},
	} {
		_, err := resilience.LoadSettingsFrom(context.Background(), "vendor", envconfig.MapLookuper(vars))
		require.Error(t, err, vars)
	}
	s := settings(t, map[string]string{"DEST_VENDOR_RATE_LIMIT": "1/s", "DEST_OTHER_TIMEOUT": "1s"})
	require.Equal(t, "1/s", s.RateLimit)
	require.Equal(t, 15*time.Second, s.Timeout, "another destination's variable does not apply")
	require.Equal(t, "DEST_EHR_ACME_PROD_", resilience.EnvPrefix("ehr:acme-prod"))
}

func TestHealthIsMergedAndPausesApply(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	store := resilience.DBStore{Pool: pool}
	a, b := resilience.New(store), resilience.New(store) // two replicas
	s := settings(t, map[string]string{"DEST_VENDOR_BREAKER_MIN_CALLS": "100"})
	da, db := a.Register("vendor", s, classify), b.Register("vendor", s, classify)

	require.ErrorIs(t, da.Call(ctx, false, func(context.Context) error { return errServer }), errServer)
	require.ErrorIs(t, da.Call(ctx, false, func(context.Context) error { return errServer }), errServer)
	require.NoError(t, a.Flush(ctx))
	var failures int
	var class string
	require.NoError(t, pool.QueryRow(ctx, "SELECT consecutive_failures, last_failure_class FROM switchboard.destination_health WHERE destination = 'vendor'").Scan(&failures, &class))
	require.Equal(t, 2, failures)
	require.Equal(t, "failing", class)

	require.NoError(t, db.Call(ctx, false, func(context.Context) error { return nil }))
	require.NoError(t, b.Flush(ctx))
	var calls int
	require.NoError(t, pool.QueryRow(ctx, "SELECT consecutive_failures, calls_total FROM switchboard.destination_health WHERE destination = 'vendor'").Scan(&failures, &calls))
	require.Zero(t, failures, "a newer success resets the streak")
	require.Equal(t, 3, calls)

	// An operator pauses the destination: after the next flush no call is made.
	_, err := pool.Exec(ctx, "SELECT switchboard.destination_set_paused('vendor', true, 'ops@example')")
	require.NoError(t, err)
	require.NoError(t, a.Flush(ctx))
	var ue *resilience.UnavailableError
	require.ErrorAs(t, da.Call(ctx, false, func(context.Context) error { t.Fatal("called while paused"); return nil }), &ue)
	require.Equal(t, resilience.ReasonPaused, ue.Reason)
	_, err = pool.Exec(ctx, "SELECT switchboard.destination_set_paused('vendor', false, 'ops@example')")
	require.NoError(t, err)
	require.NoError(t, a.Flush(ctx))
	require.NoError(t, da.Ready())
	var audits int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.audit_log WHERE target_type = 'destination' AND action IN ('destination.pause', 'destination.resume')").Scan(&audits))
	require.Equal(t, 2, audits)
}

func TestConsecutiveFailuresTripDespiteAHealthyWindow(t *testing.T) {
	t.Parallel()
	reg := resilience.New(nil)
	d := reg.Register("vendor", settings(t, map[string]string{
		"DEST_VENDOR_BREAKER_MIN_CALLS":            "10",
		"DEST_VENDOR_BREAKER_CONSECUTIVE_FAILURES": "5",
	}), classify)
	ctx := context.Background()
	for range 100 { // a busy, healthy minute
		require.NoError(t, d.Call(ctx, false, func(context.Context) error { return nil }))
	}
	for range 5 { // then the vendor goes down
		require.ErrorIs(t, d.Call(ctx, false, func(context.Context) error { return errServer }), errServer)
	}
	require.Equal(t, "open", d.BreakerState(), "5 failures in a row open it; the 5% failure rate alone would not")
	var ue *resilience.UnavailableError
	require.ErrorAs(t, d.Call(ctx, false, func(context.Context) error { t.Fatal("called while open"); return nil }), &ue)
}

// A destination whose credentials are placeholders is never called: every
// call holds with reason unconfigured, and its health says so.
func TestUnconfiguredDestinationHoldsItsCalls(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	reg := resilience.New(resilience.DBStore{Pool: pool})
	d := reg.RegisterUnconfigured("twilio", "TWILIO_AUTH_TOKEN must be alphanumeric")
	require.Equal(t, "TWILIO_AUTH_TOKEN must be alphanumeric", d.Unconfigured())

	var ue *resilience.UnavailableError
	require.ErrorAs(t, d.Ready(), &ue)
	require.Equal(t, resilience.ReasonUnconfigured, ue.Reason)
	require.GreaterOrEqual(t, ue.RetryAfter, 5*time.Minute)
	called := false
	err := d.Call(t.Context(), true, func(context.Context) error { called = true; return nil })
	require.ErrorAs(t, err, &ue)
	require.False(t, called, "an unconfigured destination is never called")

	require.NoError(t, reg.Flush(t.Context()))
	var class string
	require.NoError(t, pool.QueryRow(t.Context(),
		"SELECT last_failure_class FROM switchboard.destination_health WHERE destination = 'twilio'").Scan(&class))
	require.Equal(t, "unconfigured", class)
}

// A provider that answers 5xx to every send while its list endpoint works:
// with CountWritesOnly the successful look-ups do not hold the breaker
// closed, so the sends' failures open it (and jobs fail over); without it
// they would.
func TestLookupsDoNotHoldTheBreakerClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vars := map[string]string{
		"DEST_VENDOR_BREAKER_MIN_CALLS":            "4",
		"DEST_VENDOR_BREAKER_FAILURE_RATE":         "0.5",
		"DEST_VENDOR_BREAKER_CONSECUTIVE_FAILURES": "0",
		"DEST_VENDOR_RETRIES":                      "0",
	}
	send := func(context.Context) error { return fmt.Errorf("error sending: %w", errServer) }
	lookup := func(context.Context) error { return nil }
	drive := func(d *resilience.Destination) {
		for range 4 {
			_ = d.Call(ctx, false, send)
			for range 3 {
				_ = d.Call(ctx, true, lookup)
			}
		}
	}

	counted := resilience.New(nil).Register("vendor", settings(t, vars), classify)
	drive(counted)
	require.Equal(t, "closed", counted.BreakerState(), "look-ups counted: the breaker never opens")

	writesOnly := resilience.New(nil).Register("vendor", settings(t, vars), classify).CountWritesOnly()
	drive(writesOnly)
	require.Equal(t, "open", writesOnly.BreakerState(), "only sends counted: four failed sends open it")
}
