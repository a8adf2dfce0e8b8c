package sms_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/jobs"
)

func TestAdvance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to sms.Status
		want     bool
	}{
		{sms.StatusQueued, sms.StatusSending, true},
		{sms.StatusSending, sms.StatusSent, true},
		{sms.StatusSent, sms.StatusDelivered, true},
		{sms.StatusSending, sms.StatusDelivered, true},
		{sms.StatusDelivered, sms.StatusSent, false},
		{sms.StatusDelivered, sms.StatusUndelivered, false},
		{sms.StatusFailed, sms.StatusDelivered, false},
		{sms.StatusSent, sms.StatusSent, false},
		{sms.StatusCancelled, sms.StatusSending, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, sms.Advance(tc.from, tc.to), "%s → %s", tc.from, tc.to)
	}
}

func TestApplyReportOnlyMovesForward(t *testing.T) {
	t.Parallel()
	tx := dbtest.Tx(t)
	ctx := context.Background()
	q := db.New()
	var id int64
	require.NoError(t, tx.QueryRow(ctx, "SELECT switchboard.send_sms('k1', '+15005550009', 'hello')").Scan(&id))
	_, err := tx.Exec(ctx, "UPDATE switchboard.messages SET status = 'sending', provider = 'twilio', provider_message_id = 'SM1' WHERE id = $1", id)
	require.NoError(t, err)

	var hook int64 = 7 // pushed reports: every one is recorded
	apply := func(word string, status sms.Status) {
		require.NoError(t, sms.ApplyReport(ctx, q, tx, sms.Report{Provider: "twilio", ProviderMessageID: "SM1", ProviderStatus: word, Status: status}, &hook))
	}
	status := func() string {
		var s string
		require.NoError(t, tx.QueryRow(ctx, "SELECT status FROM switchboard.messages WHERE id = $1", id).Scan(&s))
		return s
	}
	apply("delivered", sms.StatusDelivered)
	require.Equal(t, "delivered", status())
	apply("sent", sms.StatusSent) // late
	require.Equal(t, "delivered", status())
	apply("delivered", sms.StatusDelivered) // duplicate
	apply("undelivered", sms.StatusUndelivered)
	require.Equal(t, "delivered", status())

	rows, err := tx.Query(ctx, "SELECT provider_status, applied FROM switchboard.message_events WHERE message_id = $1 ORDER BY id", id)
	require.NoError(t, err)
	type ev struct {
		Word    string
		Applied bool
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ev])
	require.NoError(t, err)
	require.Equal(t, []ev{{"delivered", true}, {"sent", false}, {"delivered", false}, {"undelivered", false}}, evs)
	var events int
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.delivered'").Scan(&events))
	require.Equal(t, 1, events, "one final event")

	err = sms.ApplyReport(ctx, q, tx, sms.Report{Provider: "twilio", ProviderMessageID: "SM-unknown", ProviderStatus: "sent", Status: sms.StatusSent}, nil)
	require.ErrorIs(t, err, pgx.ErrNoRows)
}

// withAPI runs the real api in front of the bundle's database: the sandbox
// posts its signed callbacks there.
func withAPI(t *testing.T) (*testBundle, string) {
	t.Helper()
	var handler atomic.Pointer[http.Handler]
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(apiSrv.Close)

	b := setup(t, apiSrv.URL)
	srv, err := api.New(api.Config{PublicBaseURL: apiSrv.URL, TwilioAuthToken: testToken}, b.pool, b.client, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, srv.Start(ctx))
	h := srv.Handler()
	handler.Store(&h)
	return b, apiSrv.URL
}

// TestEndToEnd follows one message from the app's transaction to delivered:
// switchboard.send_sms → worker → twilio-go → sandbox Twilio → signed status
// callbacks → api → inbox → webhook_process → message delivered + event.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	b, _ := withAPI(t)

	id := b.send(t, "e2e-1")
	require.Eventually(t, func() bool { return b.message(t, id).Status == "delivered" }, 60*time.Second, 20*time.Millisecond)

	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM switchboard.inbound_webhooks WHERE provider = 'twilio' AND state = 'processed'"))
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM switchboard.message_events WHERE message_id = $1 AND applied", id))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.delivered' AND subject = $1", "message/"+itoa(id)))
}

// TestReconciliationFillsInALostFinalStatus: the callbacks never arrive
// (no public URL), yet the message ends delivered after a reconcile run.
func TestReconciliationFillsInALostFinalStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	id := b.send(t, "lost-callback")
	m := b.waitJob(t, id, "completed")
	require.Equal(t, "sending", m.Status)
	require.Eventually(t, func() bool {
		for _, msg := range b.sandbox.Messages() {
			if msg.SID == *m.SID && msg.Status == "delivered" {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "Twilio itself delivered it")

	// Not yet due: reconciliation leaves a fresh message alone.
	_, err := b.client.Insert(ctx, jobs.SMSReconcileArgs{}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'sms_reconcile' AND state = 'completed'") == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, "sending", b.message(t, id).Status)

	_, err = b.pool.Exec(ctx, "UPDATE switchboard.messages SET accepted_at = now() - interval '1 hour' WHERE id = $1", id)
	require.NoError(t, err)
	_, err = b.client.Insert(ctx, jobs.SMSReconcileArgs{}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.message(t, id).Status == "delivered" }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.delivered' AND subject = $1", "message/"+itoa(id)))
	require.Positive(t, b.sandbox.FetchCalls())
}
