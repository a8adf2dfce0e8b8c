package fhir_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// workHeld works one fhir_push job through River's own executor (in a
// rolled-back transaction) and returns the job's metadata after it: what
// River UI shows.
func (b *testBundle) workHeld(t *testing.T, w *fhir.PushWorker, args jobs.FHIRPushArgs) (river.EventKind, map[string]any) {
	t.Helper()
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Schema: worker.Schema}, river.Worker[jobs.FHIRPushArgs](w))
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	res, _ := tw.Work(b.ctx, t, tx, args, nil)
	var meta map[string]any
	require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
	return res.EventKind, meta
}

func requireHold(t *testing.T, meta map[string]any, reason string) {
	t.Helper()
	require.Equal(t, reason, meta[resilience.MetadataHoldReason])
	require.Equal(t, fhir.DestinationName("medplum"), meta[resilience.MetadataHoldDestination])
	until, err := time.Parse(time.RFC3339, meta[resilience.MetadataHoldUntil].(string))
	require.NoError(t, err)
	require.True(t, until.After(time.Now().Add(-time.Minute)), "held until a time to come")
}

// TestHeldPushesSayWhy: a push held for a disabled endpoint, a booked
// rate-limit slot or the EHR's 429 is snoozed with its reason and
// destination in the job's metadata, where River UI shows them.
func TestHeldPushesSayWhy(t *testing.T) {
	t.Parallel()

	t.Run("EndpointDisabled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fhir.Config{})
		require.NoError(t, fhir.SetEnabled(b.ctx, b.pool, "medplum", false, "test"))
		pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: "held-" + randHex(4), FamilyName: "Held"})
		kind, meta := b.workHeld(t, b.push, jobs.FHIRPushArgs{EndpointID: b.endpoint.ID, Entity: "patient", EntityID: pid})
		require.Equal(t, river.EventKindJobSnoozed, kind)
		requireHold(t, meta, resilience.HoldEndpointDisabled)
	})

	t.Run("RateSlot", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fhir.Config{})
		_, err := b.pool.Exec(b.ctx, `UPDATE switchboard.ehr_endpoints SET rate_limit = '1/h', updated_at = now() WHERE id = $1`, b.endpoint.ID)
		require.NoError(t, err)
		w, err := fhir.NewPushWorker(fhir.Deps{Pool: b.pool, Registry: resilience.New(nil), Limiter: ratelimit.New(b.pool)})
		require.NoError(t, err)
		first := b.patient(t, jobs.UpsertPatientParams{ExternalRef: "slot-" + randHex(4), FamilyName: "First"})
		second := b.patient(t, jobs.UpsertPatientParams{ExternalRef: "slot-" + randHex(4), FamilyName: "Second"})
		kind, meta := b.workHeld(t, w, jobs.FHIRPushArgs{EndpointID: b.endpoint.ID, Entity: "patient", EntityID: first})
		require.Equal(t, river.EventKindJobCompleted, kind, "the hour's one slot")
		require.Nil(t, meta[resilience.MetadataHoldReason])
		kind, meta = b.workHeld(t, w, jobs.FHIRPushArgs{EndpointID: b.endpoint.ID, Entity: "patient", EntityID: second})
		require.Equal(t, river.EventKindJobSnoozed, kind)
		requireHold(t, meta, resilience.HoldRateSlot)
	})

	// throttled pushes a changed patient into an EHR answering 429 with
	// Retry-After retryAfter (seconds) and returns the held job's metadata.
	throttled := func(t *testing.T, retryAfter int) map[string]any {
		b := setup(t, fhir.Config{})
		ref := "throttled-" + randHex(4)
		pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Before"})
		require.NoError(t, b.runPush(t, "patient", pid))
		b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "After"})
		status, _, _ := fhirDo(t, "POST", b.base+"/$fault", map[string]any{"path": "Patient/" + b.link(t, "patient", pid).ResourceID,
			"status": 429, "retryAfter": retryAfter, "times": 1}, nil)
		require.Equal(t, 200, status)
		kind, meta := b.workHeld(t, b.push, jobs.FHIRPushArgs{EndpointID: b.endpoint.ID, Entity: "patient", EntityID: pid})
		require.Equal(t, river.EventKindJobSnoozed, kind)
		requireHold(t, meta, resilience.HoldThrottled)
		return meta
	}

	t.Run("Throttled", func(t *testing.T) {
		t.Parallel()
		throttled(t, 7)
	})

	// A Retry-After of 31 years holds the push for an hour at most
	// (resilience.MaxThrottleWait); it used to park it for the 31 years.
	t.Run("ThrottledForYears", func(t *testing.T) {
		t.Parallel()
		meta := throttled(t, 999999999)
		until, err := time.Parse(time.RFC3339, meta[resilience.MetadataHoldUntil].(string))
		require.NoError(t, err)
		require.False(t, until.After(time.Now().Add(time.Hour)), "held until %s", until)
	})
}
