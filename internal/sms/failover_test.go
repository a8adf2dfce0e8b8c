package sms_test

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/telnyx"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

type failoverBundle struct {
	*testBundle
	telnyx    *telnyxsandbox.Server
	telnyxKey ed25519.PublicKey
}

// setupFailover runs the send worker with Twilio first and Telnyx second.
// twilioURL overrides where the Twilio client points (a closed port).
func setupFailover(t *testing.T, twilioURL string) *failoverBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	logger := phiFreeLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	twBox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	twSrv := httptest.NewServer(twBox)
	t.Cleanup(twSrv.Close)
	if twilioURL == "" {
		twilioURL = twSrv.URL
	}
	tw, err := twilio.New(twilio.Config{AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: twilioURL, RequestTimeout: time.Second}, nil)
	require.NoError(t, err)

	txBox := telnyxsandbox.New(telnyxsandbox.Config{APIKey: "KEYtest"}, logger)
	txSrv := httptest.NewServer(txBox)
	t.Cleanup(txSrv.Close)
	tx, err := telnyx.New(telnyx.Config{APIKey: "KEYtest", FromNumber: "+15005550007", PublicKey: txBox.PublicKeyBase64(),
		APIBaseURL: txSrv.URL, RequestTimeout: time.Second, DetailRecordLag: time.Second}, nil)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{InFlightGrace: 2 * time.Second}, pool,
		sms.SendDeps{Providers: []sms.Provider{{Sender: tw}, {Sender: tx}}}, logger))
	river.AddWorker(workers, sms.NewWebhookWorker(pool, map[string]sms.ReportParser{"twilio": tw, "telnyx": tx},
		sms.InboundConfig{HelpText: "help text"}, logger))
	client := startClient(t, ctx, pool, workers, "sms=5,inbound=5", logger)
	key, err := telnyx.ParsePublicKey(txBox.PublicKeyBase64())
	require.NoError(t, err)
	return &failoverBundle{testBundle: &testBundle{pool: pool, sandbox: twBox, twilio: tw, client: client}, telnyx: txBox, telnyxKey: key}
}

func attemptsByProvider(t *testing.T, pool *pgxpool.Pool, id int64) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT provider || ':' || coalesce(outcome, 'open') FROM switchboard.message_attempts WHERE message_id = $1 ORDER BY id", id)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

func TestFailover(t *testing.T) {
	t.Parallel()

	t.Run("RefusedConnectionFailsOverWithOneProviderID", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := "http://" + ln.Addr().String()
		require.NoError(t, ln.Close())

		b := setupFailover(t, closed)
		id := b.send(t, "failover-refused")
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, []string{"twilio:not_sent", "telnyx:accepted"}, attemptsByProvider(t, b.pool, id))
		require.Len(t, b.telnyx.Messages(), 1)
		require.Equal(t, b.telnyx.Messages()[0].ID, *m.SID)
		var provider string
		require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT provider FROM switchboard.messages WHERE id = $1", id).Scan(&provider))
		require.Equal(t, "telnyx", provider)
	})

	t.Run("TimeoutAfterReceivingIsReconciledWithTheSameProvider", func(t *testing.T) {
		t.Parallel()
		b := setupFailover(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Hang: 3 * time.Second})
		id := b.send(t, "failover-timeout")
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, []string{"twilio:reconciled_found"}, attemptsByProvider(t, b.pool, id))
		require.Equal(t, 1, b.sandbox.CreateCalls())
		require.Zero(t, b.telnyx.CreateCalls(), "nothing sent on Telnyx while Twilio's answer was unknown")
	})

	t.Run("RecipientErrorIsFinalForEveryProvider", func(t *testing.T) {
		t.Parallel()
		b := setupFailover(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 400, Code: 21211})
		id := b.send(t, "failover-recipient")
		m := b.waitJob(t, id, "completed")
		require.Equal(t, "failed", m.Status)
		require.Equal(t, []string{"twilio:recipient_rejected"}, attemptsByProvider(t, b.pool, id))
		require.Zero(t, b.telnyx.CreateCalls())
	})

	t.Run("OurConfigRejectedAtTwilioFailsOver", func(t *testing.T) {
		t.Parallel()
		b := setupFailover(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 401, Code: 20003})
		id := b.send(t, "failover-auth")
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, []string{"twilio:permanent", "telnyx:accepted"}, attemptsByProvider(t, b.pool, id))
	})
}

// TestStatusesAcrossProviders: reports from both providers for their own
// messages only move each message forward.
func TestStatusesAcrossProviders(t *testing.T) {
	t.Parallel()
	b := setupFailover(t, "")
	ctx := context.Background()
	q := testQueries()
	ids := map[string]int64{}
	for _, p := range []string{"twilio", "telnyx"} {
		id := b.send(t, "cross-"+p)
		b.waitJob(t, id, "completed")
		_, err := b.pool.Exec(ctx, "UPDATE switchboard.messages SET provider = $2, provider_message_id = $3 WHERE id = $1", id, p, "P-"+p)
		require.NoError(t, err)
		ids[p] = id
	}
	apply := func(provider, word string, status sms.Status) {
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, sms.ApplyReport(ctx, q, tx, sms.Report{Provider: provider, ProviderMessageID: "P-" + provider, ProviderStatus: word, Status: status}, nil))
		require.NoError(t, tx.Commit(ctx))
	}
	apply("telnyx", "delivered", sms.StatusDelivered)
	apply("twilio", "sent", sms.StatusSent)
	apply("telnyx", "sent", sms.StatusSent) // late
	apply("twilio", "delivered", sms.StatusDelivered)
	apply("twilio", "sent", sms.StatusSent) // late
	require.Equal(t, "delivered", b.message(t, ids["telnyx"]).Status)
	require.Equal(t, "delivered", b.message(t, ids["twilio"]).Status)
	// A report with one provider's id never touches the other's message.
	err := sms.ApplyReport(ctx, q, mustTx(t, b.pool), sms.Report{Provider: "telnyx", ProviderMessageID: "P-twilio", Status: sms.StatusFailed}, nil)
	require.Error(t, err)
}

func testQueries() *db.Queries { return db.New() }

func mustTx(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// TestStopOnTelnyxBlocksTwilio: consent is one registry for all providers.
func TestStopOnTelnyxBlocksTwilio(t *testing.T) {
	t.Parallel()
	b := setupFailover(t, "")
	srv, err := api.New(api.Config{PublicBaseURL: "http://switchboard.test", TelnyxPublicKey: b.telnyxKey},
		b.pool, b.client, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, srv.Start(t.Context()))
	apiSrv := httptest.NewServer(srv.Handler())
	t.Cleanup(apiSrv.Close)

	require.NoError(t, b.telnyx.SendInbound(context.Background(), apiSrv.URL+"/webhooks/telnyx", testTo, "+15005550007", "STOP"))
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM switchboard.sms_consent WHERE phone_e164 = $1 AND opted_out AND source = 'telnyx_inbound_stop'", testTo) == 1
	}, 60*time.Second, 20*time.Millisecond)

	id := b.send(t, "after-telnyx-stop")
	m := b.waitJob(t, id, "completed")
	require.Equal(t, "blocked_opted_out", m.Status)
	require.Zero(t, b.sandbox.CreateCalls(), "Twilio never asked")
	require.Zero(t, b.telnyx.CreateCalls(), "nor Telnyx")
}
