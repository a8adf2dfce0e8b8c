package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

func TestFHIRKindsMatchJobKinds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	for _, args := range []kindWithOpts{jobs.FHIRPushArgs{}, jobs.FHIRPullArgs{}, jobs.FHIRPullScheduleArgs{}} {
		t.Run(args.Kind(), func(t *testing.T) { checkKind(t, pool, args) })
	}
}

type fhirBundle struct {
	pool *pgxpool.Pool
	ctx  context.Context
}

func setupFHIR(t *testing.T) *fhirBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO switchboard.ehr_endpoints (name, base_url, push_types)
		VALUES ('all', 'http://ehr.invalid/fhir', '{Patient,Observation}'), ('patients', 'http://ehr2.invalid/fhir', '{Patient}'),
		       ('off', 'http://ehr3.invalid/fhir', '{Patient,Observation}')`)
	require.NoError(t, err)
	// Retired (`ehr disable --drop`): nothing is queued for it. A merely
	// disabled endpoint gets its pushes queued and held
	// (internal/fhir TestDisabledEndpointHoldsPushes).
	_, err = pool.Exec(ctx, `UPDATE switchboard.ehr_endpoints SET enabled = false, retired_at = now() WHERE name = 'off'`)
	require.NoError(t, err)
	return &fhirBundle{pool: pool, ctx: ctx}
}

// in runs fn in a committed transaction.
func (b *fhirBundle) in(t *testing.T, fn func(tx pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(b.ctx, b.pool, fn)
}

// pushJobs lists the waiting fhir_push jobs as endpoint name/entity/id.
func (b *fhirBundle) pushJobs(t *testing.T, entity string, id int64) []string {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT e.name FROM switchboard.river_job j
		JOIN switchboard.ehr_endpoints e ON e.id = (j.args->>'endpoint_id')::bigint
		WHERE j.kind = 'fhir_push' AND j.args->>'entity' = $1 AND (j.args->>'entity_id')::bigint = $2 ORDER BY e.name`, entity, id)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	require.ErrorIs(t, err, jobs.ErrInvalidInput)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "22023", pgErr.Code)
	require.Contains(t, pgErr.Message, field)
}

func TestUpsertPatient(t *testing.T) {
	t.Parallel()
	b := setupFHIR(t)

	var id int64
	require.NoError(t, b.in(t, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.UpsertPatient(b.ctx, tx, jobs.UpsertPatientParams{ExternalRef: "p-1", GivenName: "Zoë", FamilyName: "Łukasiewicz",
			Gender: "female", BirthDate: time.Date(1980, 2, 29, 0, 0, 0, 0, time.UTC), PhoneE164: "+15005550006"})
		return err
	}))

	t.Run("NewPatientQueuedForEndpointsTakingPatients", func(t *testing.T) {
		require.Equal(t, []string{"all", "patients"}, b.pushJobs(t, "patient", id))
	})

	t.Run("UnchangedIsNotQueuedAgain", func(t *testing.T) {
		_, err := b.pool.Exec(b.ctx, `UPDATE switchboard.river_job SET state = 'completed', finalized_at = now() WHERE kind = 'fhir_push'`)
		require.NoError(t, err)
		require.NoError(t, b.in(t, func(tx pgx.Tx) error {
			again, err := jobs.UpsertPatient(b.ctx, tx, jobs.UpsertPatientParams{ExternalRef: "p-1", GivenName: "Zoë"})
			require.Equal(t, id, again)
			return err
		}))
		require.Len(t, b.pushJobs(t, "patient", id), 2)
	})

	t.Run("ChangedIsQueuedOncePerEndpointWhileWaiting", func(t *testing.T) {
		for _, name := range []string{"Zoe", "Zoé"} {
			require.NoError(t, b.in(t, func(tx pgx.Tx) error {
				_, err := jobs.UpsertPatient(b.ctx, tx, jobs.UpsertPatientParams{ExternalRef: "p-1", GivenName: name})
				return err
			}))
		}
		require.Len(t, b.pushJobs(t, "patient", id), 4)
		var given, family string
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT given_name, family_name FROM switchboard.patients WHERE id = $1`, id).Scan(&given, &family))
		require.Equal(t, "Zoé", given)
		require.Equal(t, "Łukasiewicz", family, "an empty field keeps the stored value")
	})

	t.Run("BadInputNamesTheField", func(t *testing.T) {
		for field, p := range map[string]jobs.UpsertPatientParams{
			"external_ref": {},
			"gender":       {ExternalRef: "x", Gender: "f"},
			"phone_e164":   {ExternalRef: "x", PhoneE164: "555"},
			"birth_date":   {ExternalRef: "x", BirthDate: time.Now().AddDate(1, 0, 0)},
		} {
			err := b.in(t, func(tx pgx.Tx) error { _, err := jobs.UpsertPatient(b.ctx, tx, p); return err })
			requireInvalid(t, err, field)
		}
	})
}

func TestRecordObservation(t *testing.T) {
	t.Parallel()
	b := setupFHIR(t)
	require.NoError(t, b.in(t, func(tx pgx.Tx) error {
		_, err := jobs.UpsertPatient(b.ctx, tx, jobs.UpsertPatientParams{ExternalRef: "p-2"})
		return err
	}))
	at := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	record := func(p jobs.RecordObservationParams) (int64, error) {
		var id int64
		err := b.in(t, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.RecordObservation(b.ctx, tx, p)
			return err
		})
		return id, err
	}
	hr := jobs.RecordObservationParams{PatientExternalRef: "p-2", Kind: "heart_rate", Value: 62, Unit: "/min", EffectiveStart: at}

	t.Run("QueuedForEndpointsTakingObservations", func(t *testing.T) {
		id, err := record(hr)
		require.NoError(t, err)
		require.Equal(t, []string{"all"}, b.pushJobs(t, "observation", id))
	})

	t.Run("AppObservationIsIdempotentByDerivedSourceID", func(t *testing.T) {
		first, err := record(hr)
		require.NoError(t, err)
		again, err := record(hr)
		require.NoError(t, err)
		require.Equal(t, first, again)
		changed := hr
		changed.Value = 64
		third, err := record(changed)
		require.NoError(t, err)
		require.Equal(t, first, third, "same time, new value: an update")
	})

	t.Run("SourceIDUpdatesAndConflicts", func(t *testing.T) {
		steps := jobs.RecordObservationParams{PatientExternalRef: "p-2", Kind: "steps", Value: 1200, Unit: "/d",
			EffectiveStart: at, EffectiveEnd: at.Add(24 * time.Hour), Source: "google_health", SourceID: "day-1"}
		id, err := record(steps)
		require.NoError(t, err)
		steps.Value = 4000
		again, err := record(steps)
		require.NoError(t, err)
		require.Equal(t, id, again)
		var v float64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT value FROM switchboard.observations WHERE id = $1`, id).Scan(&v))
		require.Equal(t, 4000.0, v)
		steps.Kind, steps.Unit, steps.Value = "heart_rate", "/min", 70
		_, err = record(steps)
		require.ErrorIs(t, err, jobs.ErrIdempotencyConflict)
	})

	t.Run("EHRDataIsNeverPushed", func(t *testing.T) {
		id, err := record(jobs.RecordObservationParams{PatientExternalRef: "p-2", Kind: "weight", Value: 70.5, Unit: "kg",
			EffectiveStart: at, Source: "ehr:all", SourceID: "Observation/1/_history/1"})
		require.NoError(t, err)
		require.Empty(t, b.pushJobs(t, "observation", id))
	})

	t.Run("BadInputNamesTheField", func(t *testing.T) {
		cases := map[string]func(*jobs.RecordObservationParams){
			"patient_external_ref": func(p *jobs.RecordObservationParams) { p.PatientExternalRef = "nobody" },
			"kind":                 func(p *jobs.RecordObservationParams) { p.Kind = "mood" },
			"unit":                 func(p *jobs.RecordObservationParams) { p.Unit = "bpm" },
			"value":                func(p *jobs.RecordObservationParams) { p.Value = -1 },
			"effective_start":      func(p *jobs.RecordObservationParams) { p.EffectiveStart = time.Time{} },
			"effective_end":        func(p *jobs.RecordObservationParams) { p.EffectiveEnd = at.Add(-time.Hour) },
			"source_id":            func(p *jobs.RecordObservationParams) { p.Source = "apple_health" },
			"source":               func(p *jobs.RecordObservationParams) { p.Source = "Apple Health"; p.SourceID = "1" },
			"device_id":            func(p *jobs.RecordObservationParams) { p.DeviceID = 999 },
		}
		for field, mutate := range cases {
			p := hr
			mutate(&p)
			_, err := record(p)
			requireInvalid(t, err, field)
		}
	})
}

func TestPushFHIR(t *testing.T) {
	t.Parallel()
	b := setupFHIR(t)
	res := json.RawMessage(`{"resourceType":"Patient","active":true}`)
	push := func(r any, o *jobs.PushFHIROpts) (int64, error) {
		var id int64
		err := b.in(t, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.PushFHIR(b.ctx, tx, r, o)
			return err
		})
		return id, err
	}

	t.Run("QueuedByTypeOrEndpoint", func(t *testing.T) {
		id, err := push(res, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"all", "patients"}, b.pushJobs(t, "outbound", id))
		id, err = push(map[string]any{"resourceType": "Observation", "status": "final"}, &jobs.PushFHIROpts{EndpointName: "patients"})
		require.NoError(t, err)
		require.Equal(t, []string{"patients"}, b.pushJobs(t, "outbound", id))
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		a, err := push(res, &jobs.PushFHIROpts{IdempotencyKey: "k1"})
		require.NoError(t, err)
		again, err := push(res, &jobs.PushFHIROpts{IdempotencyKey: "k1"})
		require.NoError(t, err)
		require.Equal(t, a, again)
		_, err = push(json.RawMessage(`{"resourceType":"Patient","active":false}`), &jobs.PushFHIROpts{IdempotencyKey: "k1"})
		require.ErrorIs(t, err, jobs.ErrIdempotencyConflict)
	})

	t.Run("StructurallyInvalidIsRejected", func(t *testing.T) {
		for field, r := range map[string]any{
			"resource.resourceType": json.RawMessage(`{"active":true}`),
			"resource must be":      json.RawMessage(`[1]`),
			"resource.id":           json.RawMessage(`{"resourceType":"Patient","id":"x"}`),
		} {
			_, err := push(r, nil)
			requireInvalid(t, err, field)
		}
		_, err := push(res, &jobs.PushFHIROpts{EndpointName: "off"})
		requireInvalid(t, err, "endpoint_name")
	})
}
