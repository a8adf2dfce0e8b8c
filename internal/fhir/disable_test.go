package fhir_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

type heldJob struct {
	id   int64
	args jobs.FHIRPushArgs
}

// dueJobs lists the endpoint's fhir_push jobs River would take now, in the
// order it takes them (priority, scheduled_at, id).
func (b *testBundle) dueJobs(t *testing.T) []heldJob {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT id, (args->>'entity'), (args->>'entity_id')::bigint FROM switchboard.river_job
		WHERE kind = 'fhir_push' AND state = 'available' AND scheduled_at <= now() AND (args->>'endpoint_id')::bigint = $1
		ORDER BY priority, scheduled_at, id`, b.endpoint.ID)
	require.NoError(t, err)
	defer rows.Close()
	var out []heldJob
	for rows.Next() {
		j := heldJob{args: jobs.FHIRPushArgs{EndpointID: b.endpoint.ID}}
		require.NoError(t, rows.Scan(&j.id, &j.args.Entity, &j.args.EntityID))
		out = append(out, j)
	}
	return out
}

// work runs one queued job as River would and applies a snooze the way
// River does (scheduled, due later, attempt not spent).
func (b *testBundle) work(t *testing.T, j heldJob) error {
	t.Helper()
	err := b.push.Work(b.ctx, &river.Job[jobs.FHIRPushArgs]{JobRow: &rivertype.JobRow{ID: j.id, Attempt: 1, Metadata: []byte(`{}`)}, Args: j.args})
	var se *rivertype.JobSnoozeError
	state := "completed"
	if err != nil {
		state = "cancelled"
	}
	if asSnooze(err, &se) {
		_, err2 := b.pool.Exec(b.ctx, `UPDATE switchboard.river_job SET state = 'scheduled', scheduled_at = now() + $2::interval WHERE id = $1`,
			j.id, se.Duration.String())
		require.NoError(t, err2)
		return err
	}
	_, err2 := b.pool.Exec(b.ctx, `UPDATE switchboard.river_job SET state = $2, finalized_at = now() WHERE id = $1`, j.id, state)
	require.NoError(t, err2)
	return err
}

func asSnooze(err error, se **rivertype.JobSnoozeError) bool {
	if err == nil {
		return false
	}
	s, ok := err.(*rivertype.JobSnoozeError)
	if ok {
		*se = s
	}
	return ok
}

func TestDisabledEndpointHoldsPushes(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	require.NoError(t, fhir.SetEnabled(b.ctx, b.pool, "medplum", false, "test"))
	ref := "held-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Held"})
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	var obs []int64
	for i := 0; i < 3; i++ {
		b.tx(t, func(tx pgx.Tx) error {
			id, err := jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "heart_rate",
				Value: float64(60 + i), Unit: "/min", EffectiveStart: at.Add(time.Duration(i) * time.Minute)})
			obs = append(obs, id)
			return err
		})
	}
	queued := b.dueJobs(t)
	require.Len(t, queued, 4, "queued for the disabled endpoint too: the patient and three observations")

	// Disabled: every push is held, nothing is sent, no attempt spent.
	n := b.proxy.requests()
	for _, j := range queued {
		err := b.work(t, j)
		var se *rivertype.JobSnoozeError
		require.True(t, asSnooze(err, &se), "held, not completed: %v", err)
		require.Equal(t, fhir.HoldSnooze, se.Duration)
	}
	require.Equal(t, n, b.proxy.requests(), "nothing sent while disabled")
	require.Empty(t, b.dueJobs(t))

	// Enabled: every held push is due now, oldest first, and all arrive.
	require.NoError(t, fhir.SetEnabled(b.ctx, b.pool, "medplum", true, "test"))
	woken := b.dueJobs(t)
	require.Len(t, woken, 4)
	for i, j := range woken {
		require.Equal(t, queued[i].args, j.args, "oldest first")
		require.NoError(t, b.work(t, j))
	}
	require.Equal(t, "patient", woken[0].args.Entity)
	require.Len(t, b.byIdentifier(t, "Patient", ref), 1)
	for _, o := range obs {
		require.Len(t, b.byIdentifier(t, "Observation", fmt.Sprintf("observation-%d", o)), 1)
	}
	var detail string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT detail::text FROM switchboard.audit_log WHERE action = 'ehr.enable' AND target_id = 'medplum'`).Scan(&detail))
	require.JSONEq(t, `{"pushes_woken": 4}`, detail)
	_ = pid
}

func TestDisableDropRetiresAndAudits(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	require.NoError(t, fhir.SetEnabled(b.ctx, b.pool, "medplum", false, "test"))
	ref := "drop-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Dropped"})
	for _, j := range b.dueJobs(t) {
		var se *rivertype.JobSnoozeError
		require.True(t, asSnooze(b.work(t, j), &se))
	}
	n, err := fhir.DropEndpoint(b.ctx, b.pool, "medplum", "test")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	due := b.dueJobs(t)
	require.Len(t, due, 1)
	err = b.work(t, due[0])
	requireCancelled(t, err)
	require.Contains(t, err.Error(), fmt.Sprintf("for patient %d", pid))
	require.Contains(t, err.Error(), "retired")
	var detail string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT detail::text FROM switchboard.audit_log WHERE action = 'ehr.disable_drop' AND target_id = 'medplum'`).Scan(&detail))
	require.JSONEq(t, `{"pushes_dropped": 1}`, detail)

	// Retired: nothing more is queued for it.
	b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Changed"})
	require.Empty(t, b.dueJobs(t))
}
