package sms_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestThreeReplicasRespectOneSenderLimit runs three workers, each with its
// own pool and River client (30 workers in all), against one sender number
// whose limit admits a burst of 4 and then one message an hour, and counts
// at the vendor. Counting, not timing: however busy the machine, exactly
// the burst reaches the vendor, each message at most once, and every other
// job is held for its rate slot — an hour away, with the reason written
// where River UI shows it. (The limiter's rate over time is measured in
// internal/ratelimit's ThreeReplicas test, as admissions against a bound.)
func TestThreeReplicasRespectOneSenderLimit(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.DiscardHandler)

	sandbox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	var (
		mu     sync.Mutex
		bodies = map[string]int{}
	)
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			_ = r.ParseForm()
			mu.Lock()
			bodies[r.PostForm.Get("Body")]++
			mu.Unlock()
		}
		sandbox.ServeHTTP(w, r)
	}))
	t.Cleanup(vendor.Close)

	limit := ratelimit.Limit{N: 1, Period: time.Hour, Burst: 4}
	const replicas, messages = 3, 30
	for i := range replicas {
		pool, err := database.Open(ctx, database.Config{URL: url, MaxConns: 8})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		tw, err := twilio.New(twilio.Config{AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
			APIBaseURL: vendor.URL, RequestTimeout: 5 * time.Second}, nil)
		require.NoError(t, err)
		workers := river.NewWorkers()
		river.AddWorker(workers, sms.NewSendWorker(sms.Config{}, pool, sms.SendDeps{Providers: []sms.Provider{{
			Sender: tw,
			Slots:  ratelimit.New(pool).Slots("twilio:"+testFrom, limit),
		}}}, logger))
		startClient(t, ctx, pool, workers, "sms=10", logger.With("replica", i))
	}

	pool, err := database.Open(ctx, database.Config{URL: url, MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for i := range messages {
			if _, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: fmt.Sprintf("rl-%d", i), To: testTo, Body: fmt.Sprintf("m%d", i)}); err != nil {
				return err
			}
		}
		return nil
	}))

	// Wait until every job has run and come to rest: sent, or held for a
	// slot at least half an hour away.
	var sent, held int
	require.Eventually(t, func() bool {
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE state = 'completed'),
			       count(*) FILTER (WHERE state = 'scheduled' AND scheduled_at > now() + interval '30 minutes'
			                          AND metadata->>'hold_reason' = 'rate_slot' AND metadata->>'hold_destination' = 'twilio')
			FROM switchboard.river_job WHERE kind = 'sms_send'`).Scan(&sent, &held))
		return sent+held == messages
	}, 2*time.Minute, 50*time.Millisecond, "every job sent or held for its slot")

	mu.Lock()
	defer mu.Unlock()
	t.Logf("3 replicas, limit %s: %d messages reached the vendor, %d held for a slot", limit, len(bodies), held)
	require.Equal(t, limit.Burst, sent, "exactly the burst is sent")
	require.Len(t, bodies, limit.Burst, "exactly the burst reached the vendor")
	for body, n := range bodies {
		require.Equal(t, 1, n, "message %q reached the vendor once", body)
	}
	var withID int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.messages WHERE provider_message_id IS NOT NULL").Scan(&withID))
	require.Equal(t, limit.Burst, withID)
}
