package sms_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/resilience"
	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/telnyx"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestTwilioOutageFailsOverToTelnyx: with SMS_PROVIDERS=twilio,telnyx,
// Twilio answers 500 to every send while its list endpoint works. Every
// message ends delivered through Telnyx, one copy each, none at Twilio:
// the look-ups do not hold Twilio's breaker closed, and once a look-up has
// proved that Twilio has no copy the next attempt goes to Telnyx.
func TestTwilioOutageFailsOverToTelnyx(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	twBox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	twSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"code": 20500, "message": "Internal server error", "status": 500}`))
			return
		}
		twBox.ServeHTTP(w, r)
	}))
	t.Cleanup(twSrv.Close)
	tw, err := twilio.New(twilio.Config{AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: twSrv.URL, RequestTimeout: 2 * time.Second}, nil)
	require.NoError(t, err)

	txBox := telnyxsandbox.New(telnyxsandbox.Config{APIKey: "KEYtest"}, logger)
	txSrv := httptest.NewServer(txBox)
	t.Cleanup(txSrv.Close)
	tx, err := telnyx.New(telnyx.Config{APIKey: "KEYtest", FromNumber: "+15005550007", PublicKey: txBox.PublicKeyBase64(),
		APIBaseURL: txSrv.URL, RequestTimeout: 2 * time.Second, DetailRecordLag: time.Second}, nil)
	require.NoError(t, err)

	registry := resilience.New(resilience.DBStore{Pool: pool})
	dest := func(name string) *resilience.Destination {
		p := "DEST_" + map[string]string{"twilio": "TWILIO", "telnyx": "TELNYX"}[name] + "_"
		s, err := resilience.LoadSettingsFrom(ctx, name, envconfig.MapLookuper(map[string]string{
			p + "BREAKER_MIN_CALLS": "3", p + "BREAKER_FAILURE_RATE": "0.5", p + "BREAKER_WINDOW": "10s",
			p + "BREAKER_OPEN_FOR": "1s", p + "BREAKER_HALF_OPEN_CALLS": "1",
		}))
		require.NoError(t, err)
		return registry.Register(name, s, sms.Outcome).CountWritesOnly()
	}
	providers := []sms.Provider{
		{Sender: tw, Destination: dest("twilio"), Probe: tw.Probe},
		{Sender: tx, Destination: dest("telnyx"), Probe: tx.Probe},
	}
	go registry.Run(ctx, 500*time.Millisecond, logger)

	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{InFlightGrace: time.Second, PublicBaseURL: "https://switchboard.example.com"}, pool,
		sms.SendDeps{Providers: providers, UnavailableLimit: time.Hour}, logger))
	startClient(t, ctx, pool, workers, "sms=5", logger)

	const n = 12
	start := time.Now()
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for i := range n {
			if _, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: fmt.Sprintf("outage-%d", i), To: testTo, Body: fmt.Sprintf("Reminder %d", i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.Eventually(t, func() bool {
		var done int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.messages m JOIN switchboard.river_job j ON j.id = m.job_id
			WHERE j.finalized_at IS NOT NULL`).Scan(&done))
		return done == n
	}, 3*time.Minute, 50*time.Millisecond)
	t.Logf("%d messages final %s after the outage began", n, time.Since(start).Round(100*time.Millisecond))

	rows, err := pool.Query(ctx, "SELECT id, coalesce(provider, ''), coalesce(provider_message_id, '') FROM switchboard.messages ORDER BY id")
	require.NoError(t, err)
	type msg struct {
		id             int64
		provider, pmid string
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (msg, error) {
		var m msg
		return m, r.Scan(&m.id, &m.provider, &m.pmid)
	})
	require.NoError(t, err)
	copies := map[string]int{} // by ?m= on the webhook URL
	for _, m := range txBox.Messages() {
		copies[m.WebhookURL]++
	}
	for _, m := range msgs {
		require.Equal(t, "telnyx", m.provider, "message %d delivered through Telnyx", m.id)
		require.NotEmpty(t, m.pmid)
		require.Equal(t, 1, copies[fmt.Sprintf("https://switchboard.example.com/webhooks/telnyx/status?m=%d", m.id)], "message %d: one copy", m.id)
	}
	require.Len(t, txBox.Messages(), n, "one copy each at Telnyx")
	require.Empty(t, twBox.Messages(), "Twilio stored nothing")
	var dead int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.dead_letters").Scan(&dead))
	require.Zero(t, dead)
}
