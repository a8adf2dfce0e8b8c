package sms_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/resilience"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/jobs"
)

// outageWindow is how long Twilio is down in TestOutageMidBatch: a few
// seconds in make test; SWITCHBOARD_OUTAGE_WINDOW=2m for a longer run.
func outageWindow(t *testing.T) time.Duration {
	if v := os.Getenv("SWITCHBOARD_OUTAGE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err)
		return d
	}
	return 3 * time.Second
}

const outageWorkers = 5

// TestOutageMidBatch takes Twilio down in the middle of a batch: every
// message is still sent exactly once, none becomes a dead letter, and the
// jobs waited by snoozing (no attempts spent) once the breaker opened.
func TestOutageMidBatch(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	logger := slog.New(slog.DiscardHandler)
	sandbox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	srv := httptest.NewServer(sandbox)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go sandbox.Run(ctx)

	tw, err := twilio.New(twilio.Config{
		AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: srv.URL, RequestTimeout: 2 * time.Second,
	}, nil)
	require.NoError(t, err)
	settings, err := resilience.LoadSettingsFrom(ctx, "twilio", envconfig.MapLookuper(map[string]string{
		"DEST_TWILIO_BREAKER_MIN_CALLS":       "3",
		"DEST_TWILIO_BREAKER_FAILURE_RATE":    "0.5",
		"DEST_TWILIO_BREAKER_WINDOW":          "10s",
		"DEST_TWILIO_BREAKER_OPEN_FOR":        "1s",
		"DEST_TWILIO_BREAKER_HALF_OPEN_CALLS": "1",
	}))
	require.NoError(t, err)
	registry := resilience.New(resilience.DBStore{Pool: pool})
	dest := registry.Register("twilio", settings, sms.Outcome)
	go registry.Run(ctx, 500*time.Millisecond, logger)

	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{InFlightGrace: 3 * time.Second}, pool,
		sms.SendDeps{Providers: []sms.Provider{{Sender: tw, Destination: dest, Probe: tw.Probe}}, UnavailableLimit: time.Hour}, logger))
	startClient(t, ctx, pool, workers, fmt.Sprintf("sms=%d", outageWorkers), logger)

	send := func(from, to int) {
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for i := from; i < to; i++ {
				if _, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{
					IdempotencyKey: fmt.Sprintf("outage-%d", i), To: testTo, Body: fmt.Sprintf("Reminder %d", i),
				}); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	accepted := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.messages WHERE provider_message_id IS NOT NULL").Scan(&n))
		return n
	}

	const before, during = 10, 30
	send(0, before)
	require.Eventually(t, func() bool { return accepted() == before }, 60*time.Second, 20*time.Millisecond)

	sandbox.SetChaos(twiliosandbox.Chaos{Outage: true})
	send(before, before+during)
	require.Eventually(t, func() bool { return dest.BreakerState() == "open" }, 60*time.Second, 10*time.Millisecond)
	time.Sleep(outageWindow(t)) // the outage goes on; jobs snooze
	refusedDuringOutage := sandbox.Refused()
	sandbox.SetChaos(twiliosandbox.Chaos{})

	require.Eventually(t, func() bool { return accepted() == before+during }, 120*time.Second, 50*time.Millisecond)

	// Exactly one message per message at Twilio: none lost, none doubled.
	bodies := map[string]int{}
	for _, m := range sandbox.Messages() {
		bodies[m.Body]++
	}
	require.Len(t, bodies, before+during)
	for body, n := range bodies {
		require.Equal(t, 1, n, "%q reached Twilio %d times", body, n)
	}
	var deadLetters int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.dead_letters").Scan(&deadLetters))
	require.Zero(t, deadLetters)

	var failedAttempts, maxFailed, snoozes, jobsN int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT coalesce(sum(coalesce(array_length(errors, 1), 0)), 0), coalesce(max(coalesce(array_length(errors, 1), 0)), 0),
		       coalesce(sum((metadata->>'snoozes')::int), 0), count(*)
		FROM switchboard.river_job WHERE kind = 'sms_send'`).Scan(&failedAttempts, &maxFailed, &snoozes, &jobsN))
	t.Logf("outage %s: %d messages, %d requests refused by Twilio, %d attempts spent on failures (max %d for one message), %d snoozes",
		outageWindow(t), jobsN, refusedDuringOutage, failedAttempts, maxFailed, snoozes)
	require.Positive(t, snoozes, "jobs waited out the outage by snoozing")
	// Only sends made before the breaker opened spend an attempt: with a
	// 50% failure-rate breaker that is about as many failures as there were
	// successes in its window, plus the sends in flight. Trial calls while
	// it is half-open are probes, so a longer outage costs no more attempts.
	require.LessOrEqual(t, failedAttempts, before+outageWorkers, "attempts spent do not grow with the outage")
	require.LessOrEqual(t, maxFailed, 2)
}
