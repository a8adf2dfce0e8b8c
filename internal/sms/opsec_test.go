package sms_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/jobs"
)

// counterValue reads one series of a counter from the default registry.
func counterValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestStatusReportForAnUnknownIDIsGivenUpAfterTheOrphanWindow: a validly
// signed status callback for a provider id Switchboard never sent is
// recorded (the webhook row stays, state ignored), given up once it is older
// than sms.OrphanWindow instead of retrying for many minutes, and counted.
func TestStatusReportForAnUnknownIDIsGivenUpAfterTheOrphanWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	before := counterValue(t, "switchboard_sms_orphan_reports_total", map[string]string{"provider": "twilio"})

	var hookID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO switchboard.inbound_webhooks (provider, provider_event_id, event_type, raw_body, received_at)
		VALUES ('twilio', 'SMnever:delivered', 'message.status', 'MessageSid=SMnever&MessageStatus=delivered', now() - $1::interval)
		RETURNING id`, (sms.OrphanWindow+10*time.Second).String()).Scan(&hookID))
	_, err := b.client.Insert(ctx, jobs.WebhookProcessArgs{WebhookID: hookID}, nil)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM switchboard.inbound_webhooks WHERE id = $1 AND state = 'ignored'", hookID) == 1
	}, 30*time.Second, 20*time.Millisecond, "given up, not pending")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'webhook_process' AND state = 'completed'"))
	require.LessOrEqual(t, sms.OrphanWindow, 5*time.Minute, "bounded")
	require.Eventually(t, func() bool {
		return counterValue(t, "switchboard_sms_orphan_reports_total", map[string]string{"provider": "twilio"}) >= before+1
	}, 5*time.Second, 10*time.Millisecond)
}

// TestReconcilePollThatChangesNothingWritesNothing: a polled status that
// does not move the message writes no message_events row (a message that
// never gets a final status used to gain one per poll); a poll that moves it
// is recorded, and pushed reports are always recorded.
func TestReconcilePollThatChangesNothingWritesNothing(t *testing.T) {
	t.Parallel()
	tx := dbtest.Tx(t)
	ctx := context.Background()
	q := db.New()
	var id int64
	require.NoError(t, tx.QueryRow(ctx, "SELECT switchboard.send_sms('poll-1', '+15005550009', 'hello')").Scan(&id))
	_, err := tx.Exec(ctx, "UPDATE switchboard.messages SET status = 'sent', provider = 'twilio', provider_message_id = 'SMpoll' WHERE id = $1", id)
	require.NoError(t, err)
	events := func() int {
		var n int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM switchboard.message_events WHERE message_id = $1", id).Scan(&n))
		return n
	}
	sent := sms.Report{Provider: "twilio", ProviderMessageID: "SMpoll", ProviderStatus: "sent", Status: sms.StatusSent}
	for range 5 {
		require.NoError(t, sms.ApplyReport(ctx, q, tx, sent, nil))
	}
	require.Zero(t, events(), "five no-op polls")

	delivered := sent
	delivered.ProviderStatus, delivered.Status = "delivered", sms.StatusDelivered
	require.NoError(t, sms.ApplyReport(ctx, q, tx, delivered, nil))
	require.Equal(t, 1, events(), "a poll that moves the message is recorded")

	var hook int64 = 42
	require.NoError(t, sms.ApplyReport(ctx, q, tx, delivered, &hook))
	require.Equal(t, 2, events(), "a pushed duplicate is still recorded")
}
