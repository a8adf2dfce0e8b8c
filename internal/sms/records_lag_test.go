package sms_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/telnyx"
)

// recordLag is TELNYX_DETAIL_RECORD_LAG in these tests: long enough that
// no run outlives it by itself; the tests move time past it instead.
const recordLag = time.Hour

type lagBundle struct {
	*testBundle
	telnyx *telnyxsandbox.Server
	ahead  *atomic.Int64 // how far the sandbox's clock is moved forward
}

// setupRecordsLag runs the real send worker in a River client with Telnyx
// as its only provider, DetailRecordLag recordLag, against a Telnyx sandbox
// whose detail records lag by recordDelay on a clock the test moves.
func setupRecordsLag(t *testing.T, recordDelay time.Duration) *lagBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	logger := phiFreeLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	ahead := new(atomic.Int64)
	box := telnyxsandbox.New(telnyxsandbox.Config{APIKey: "KEYtest", RecordDelay: recordDelay,
		Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }}, logger)
	srv := httptest.NewServer(box)
	t.Cleanup(srv.Close)
	tx, err := telnyx.New(telnyx.Config{APIKey: "KEYtest", FromNumber: "+15005550007", PublicKey: box.PublicKeyBase64(),
		APIBaseURL: srv.URL, RequestTimeout: time.Second, DetailRecordLag: recordLag}, nil)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{PublicBaseURL: "https://switchboard.example.com", InFlightGrace: time.Millisecond}, pool,
		sms.SendDeps{Providers: []sms.Provider{{Sender: tx}}}, logger))
	client := startClient(t, ctx, pool, workers, "sms=2", logger)
	return &lagBundle{testBundle: &testBundle{pool: pool, client: client}, telnyx: box, ahead: ahead}
}

// waitHeldForRecords waits until message id's job is held for the
// provider's records and returns when it is held until.
func (b *lagBundle) waitHeldForRecords(t *testing.T, id int64) time.Time {
	t.Helper()
	var until time.Time
	require.Eventually(t, func() bool {
		var state string
		var reason *string
		require.NoError(t, b.pool.QueryRow(context.Background(), `
			SELECT j.state, j.metadata->>'hold_reason', j.scheduled_at FROM switchboard.messages m
			JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, id).Scan(&state, &reason, &until))
		return state == "scheduled" && reason != nil && *reason == sms.HoldRecordsLag
	}, 60*time.Second, 20*time.Millisecond, "message %d was never held as %s", id, sms.HoldRecordsLag)
	return until
}

// lagPassed moves the message's ambiguous attempt two lags into the past
// (the sandbox's clock with it) and makes its held job due now: what a
// lag of waiting would have done.
func (b *lagBundle) lagPassed(t *testing.T, id int64) {
	t.Helper()
	ctx := context.Background()
	b.ahead.Store(int64(2 * recordLag))
	_, err := b.pool.Exec(ctx, `UPDATE switchboard.message_attempts SET started_at = started_at - $2 * interval '1 second',
		finished_at = finished_at - $2 * interval '1 second' WHERE message_id = $1`, id, int64((2 * recordLag).Seconds()))
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE switchboard.river_job SET scheduled_at = now()
		WHERE id = (SELECT job_id FROM switchboard.messages WHERE id = $1) AND state = 'scheduled'`, id)
	require.NoError(t, err)
}

// A Telnyx send whose answer was lost is looked up in Telnyx's detail
// records, which may lag. While the attempt is younger than
// TELNYX_DETAIL_RECORD_LAG an empty search proves nothing: the job is held
// (hold_reason provider_records_lag) and the message is neither resent nor
// adopted. Once the lag has passed, the search is trusted: a copy Telnyx
// never stored is proven absent and the message sent once; a copy Telnyx
// stored (its record lagging behind the first look-up) is found and
// adopted, never sent twice. A guard of the worker's behaviour: it passes
// on the worker as it was; what is new is the sandbox's RecordDelay.
func TestAmbiguousTelnyxSendWaitsForTheRecordLag(t *testing.T) {
	t.Parallel()

	t.Run("NeverStoredIsProvenAbsentAfterTheLagAndSentOnce", func(t *testing.T) {
		t.Parallel()
		b := setupRecordsLag(t, 0)
		// A 500 before Telnyx stored anything: ambiguous to the worker.
		b.telnyx.InjectFaults(telnyxsandbox.Fault{Status: http.StatusInternalServerError})
		id := b.send(t, "records-lag-absent")

		until := b.waitHeldForRecords(t, id)
		require.Greater(t, time.Until(until), recordLag-10*time.Minute, "held until the lag has passed")
		require.Equal(t, 1, b.telnyx.CreateCalls(), "not resent")
		require.Positive(t, b.telnyx.RecordCalls(), "looked up")
		require.Empty(t, b.telnyx.Messages())
		require.Equal(t, []string{"ambiguous"}, b.attempts(t, id))
		require.Nil(t, b.message(t, id).SID, "nothing adopted")

		b.lagPassed(t, id)
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, []string{"reconciled_absent", "accepted"}, b.attempts(t, id))
		require.Equal(t, 2, b.telnyx.CreateCalls())
		require.Len(t, b.telnyx.Messages(), 1, "one copy")
		require.Equal(t, b.telnyx.Messages()[0].ID, *m.SID)
	})

	t.Run("StoredCopyHiddenByTheLagIsAdoptedNotResent", func(t *testing.T) {
		t.Parallel()
		// Telnyx stores the copy and the answer is lost; its record is not
		// searchable for half the lag.
		b := setupRecordsLag(t, recordLag/2)
		b.telnyx.InjectFaults(telnyxsandbox.Fault{AcceptThenFail: true})
		id := b.send(t, "records-lag-found")

		b.waitHeldForRecords(t, id)
		require.Equal(t, 1, b.telnyx.CreateCalls(), "not resent")
		require.Positive(t, b.telnyx.RecordCalls(), "looked up")
		require.Len(t, b.telnyx.Messages(), 1)
		require.Equal(t, []string{"ambiguous"}, b.attempts(t, id))
		require.Nil(t, b.message(t, id).SID, "nothing adopted")

		b.lagPassed(t, id)
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, b.telnyx.Messages()[0].ID, *m.SID, "the lost copy is adopted")
		require.Equal(t, []string{"reconciled_found"}, b.attempts(t, id))
		require.Equal(t, 1, b.telnyx.CreateCalls(), "never sent twice")
	})
}
