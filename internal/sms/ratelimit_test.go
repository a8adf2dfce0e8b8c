package sms_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
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
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestThreeReplicasRespectOneSenderLimit runs three workers, each with its
// own pool and River client, against one sender number limited to 5
// messages a second, and measures at the vendor.
func TestThreeReplicasRespectOneSenderLimit(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.DiscardHandler)

	sandbox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	var (
		mu       sync.Mutex
		arrivals []time.Time
	)
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
		sandbox.ServeHTTP(w, r)
	}))
	t.Cleanup(vendor.Close)

	limit := ratelimit.Limit{N: 5, Period: time.Second, Burst: 1}
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
		client, err := worker.NewClient(worker.Config{Queues: "sms=10", FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond},
			pool, workers, nil, logger.With("replica", i))
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = client.StopAndCancel(c)
		})
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
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.messages WHERE provider_message_id IS NOT NULL").Scan(&n))
		return n == messages
	}, 120*time.Second, 50*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, arrivals, messages, "each message sent once")
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	// In any one-second window the vendor sees at most the rate plus the
	// burst.
	worst := 0
	for i := range arrivals {
		n := 0
		for j := i; j < len(arrivals) && arrivals[j].Sub(arrivals[i]) < time.Second; j++ {
			n++
		}
		worst = max(worst, n)
	}
	span := arrivals[len(arrivals)-1].Sub(arrivals[0])
	observed := float64(len(arrivals)-1) / span.Seconds()
	t.Logf("3 replicas, limit %s: busiest 1 s window at the vendor held %d requests; overall %.2f/s over %s", limit, worst, observed, span.Round(time.Millisecond))
	require.LessOrEqual(t, worst, limit.N+limit.Burst)
	require.LessOrEqual(t, observed, float64(limit.N)*1.05)
}
