package sms_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

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
)

// With two providers, pausing one fails over: an operator who pauses
// Twilio during an incident wants Telnyx to carry the traffic (README,
// docs/design.md "Pause and resume"). Only when every provider is paused
// are messages held — hold_reason paused in the job's metadata — and
// resuming a provider sends them at once.
func TestPausingOneProviderFailsOverPausingAllHolds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	logger := phiFreeLogger(t)
	ctx := context.Background()

	twBox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	twSrv := httptest.NewServer(twBox)
	t.Cleanup(twSrv.Close)
	tw, err := twilio.New(twilio.Config{AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: twSrv.URL, RequestTimeout: time.Second}, nil)
	require.NoError(t, err)
	txBox := telnyxsandbox.New(telnyxsandbox.Config{APIKey: "KEYtest"}, logger)
	txSrv := httptest.NewServer(txBox)
	t.Cleanup(txSrv.Close)
	tx, err := telnyx.New(telnyx.Config{APIKey: "KEYtest", FromNumber: "+15005550007", PublicKey: txBox.PublicKeyBase64(),
		APIBaseURL: txSrv.URL, RequestTimeout: time.Second, DetailRecordLag: time.Second}, nil)
	require.NoError(t, err)

	reg := resilience.New(resilience.DBStore{Pool: pool})
	s, err := resilience.LoadSettingsFrom(ctx, "x", envconfig.MapLookuper(nil))
	require.NoError(t, err)
	providers := []sms.Provider{
		{Sender: tw, Destination: reg.Register("twilio", s, sms.Outcome)},
		{Sender: tx, Destination: reg.Register("telnyx", s, sms.Outcome)},
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{InFlightGrace: 2 * time.Second}, pool,
		sms.SendDeps{Providers: providers, UnavailableLimit: time.Hour}, logger))
	client := startClient(t, ctx, pool, workers, "sms=5", logger, reg.Hook())
	b := &testBundle{pool: pool, sandbox: twBox, twilio: tw, client: client}
	pause := func(dest string, paused bool) {
		_, err := pool.Exec(ctx, "SELECT switchboard.destination_set_paused($1, $2, 'ops@test')", dest, paused)
		require.NoError(t, err)
	}

	pause("twilio", true)
	id := b.send(t, "pause-one")
	b.waitJob(t, id, "completed")
	require.Equal(t, []string{"telnyx:accepted"}, attemptsByProvider(t, pool, id))
	require.Zero(t, twBox.CreateCalls(), "nothing sent on the paused provider")

	pause("telnyx", true)
	id = b.send(t, "pause-all")
	var meta map[string]any
	require.Eventually(t, func() bool {
		var state string
		require.NoError(t, pool.QueryRow(ctx, `SELECT j.state, j.metadata FROM switchboard.river_job j
			JOIN switchboard.messages m ON m.job_id = j.id WHERE m.id = $1`, id).Scan(&state, &meta))
		return state == "scheduled"
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, "paused", meta["hold_reason"])
	require.Empty(t, attemptsByProvider(t, pool, id))

	pause("twilio", false)
	b.waitJob(t, id, "completed")
	require.Equal(t, []string{"twilio:accepted"}, attemptsByProvider(t, pool, id))
}
