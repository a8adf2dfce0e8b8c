package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// Kinds of the FHIR integration.
const (
	KindFHIRPush         = "fhir_push"
	KindFHIRPull         = "fhir_pull"
	KindFHIRPullSchedule = "fhir_pull_schedule"
)

// Entities a fhir_push job may concern.
const (
	FHIREntityPatient       = "patient"
	FHIREntityObservation   = "observation"
	FHIREntityDevice        = "device"
	FHIREntityCommunication = "communication"
	FHIREntityConsent       = "consent"
	FHIREntityOutbound      = "outbound"
)

// FHIRPushArgs are the args of fhir_push: an endpoint and a local entity, by
// id only. For communication the id is a message id, for consent a patient
// id, for outbound a fhir_outbound id.
type FHIRPushArgs struct {
	EndpointID int64  `json:"endpoint_id"`
	Entity     string `json:"entity"`
	EntityID   int64  `json:"entity_id"`
}

// Kind implements river.JobArgs.
func (FHIRPushArgs) Kind() string { return KindFHIRPush }

// InsertOpts mirrors the fhir_push row of switchboard.job_kinds.
func (FHIRPushArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFHIR, Priority: 3, MaxAttempts: 12}
}

// FHIRPullArgs are the args of fhir_pull: an endpoint and a resource type.
type FHIRPullArgs struct {
	EndpointID   int64  `json:"endpoint_id"`
	ResourceType string `json:"resource_type"`
}

// Kind implements river.JobArgs.
func (FHIRPullArgs) Kind() string { return KindFHIRPull }

// InsertOpts mirrors the fhir_pull row of switchboard.job_kinds.
func (FHIRPullArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFHIR, Priority: 3, MaxAttempts: 10}
}

// FHIRPullScheduleArgs are the (empty) args of the periodic fhir_pull_schedule.
type FHIRPullScheduleArgs struct{}

// Kind implements river.JobArgs.
func (FHIRPullScheduleArgs) Kind() string { return KindFHIRPullSchedule }

// InsertOpts mirrors the fhir_pull_schedule row of switchboard.job_kinds.
func (FHIRPullScheduleArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, Priority: 4, MaxAttempts: 3}
}

// UpsertPatientParams are the arguments of switchboard.upsert_patient. An
// empty field keeps the stored value.
type UpsertPatientParams struct {
	ExternalRef string // the app's id for the patient, required
	GivenName   string
	FamilyName  string
	Gender      string // male, female, other or unknown
	BirthDate   time.Time
	PhoneE164   string
}

// UpsertPatient calls switchboard.upsert_patient on tx and returns the
// patient id. A new or changed patient is queued for every endpoint that
// takes Patients. Errors match ErrInvalidInput naming the field.
func UpsertPatient(ctx context.Context, tx pgx.Tx, p UpsertPatientParams) (int64, error) {
	var birth any
	if !p.BirthDate.IsZero() {
		birth = p.BirthDate.Format(time.DateOnly)
	}
	var id int64
	if err := propagateTrace(ctx, tx); err != nil {
		return 0, err
	}
	err := tx.QueryRow(ctx, "SELECT switchboard.upsert_patient($1, $2, $3, $4, $5::date, $6)",
		p.ExternalRef, nullString(p.GivenName), nullString(p.FamilyName), nullString(p.Gender), birth,
		nullString(p.PhoneE164)).Scan(&id)
	if err != nil {
		return 0, apiError("switchboard.upsert_patient", err)
	}
	return id, nil
}

// RecordObservationParams are the arguments of switchboard.record_observation.
type RecordObservationParams struct {
	PatientExternalRef string
	// Kind is one of switchboard.observation_kinds: steps, heart_rate,
	// resting_heart_rate, weight, body_height, body_temperature, spo2,
	// sleep_duration, respiratory_rate, blood_pressure_systolic,
	// blood_pressure_diastolic.
	Kind           string
	Value          float64
	Unit           string // UCUM code allowed for Kind, e.g. "/min", "kg", "%", "/d"
	EffectiveStart time.Time
	EffectiveEnd   time.Time // zero: a point in time
	// Source is app (the default), a wearable source such as
	// google_health, or ehr:<endpoint>.
	Source string
	// SourceID identifies the measurement at its source; required unless
	// Source is app, where it is derived from the patient, kind, times and
	// device.
	SourceID string
	DeviceID int64 // 0: none
	// UTCOffsetSeconds is the UTC offset the measurement was taken in (a
	// whole number of minutes within ±14 hours); the FHIR push writes the
	// effective time in it. nil keeps what is stored.
	UTCOffsetSeconds *int32
}

// RecordObservation calls switchboard.record_observation on tx and returns
// the observation id. It is idempotent by (Source, SourceID): other values
// for the same id update the observation. Errors match ErrInvalidInput
// naming the field, or ErrIdempotencyConflict when SourceID was used for
// another patient or kind.
func RecordObservation(ctx context.Context, tx pgx.Tx, p RecordObservationParams) (int64, error) {
	var id int64
	if err := propagateTrace(ctx, tx); err != nil {
		return 0, err
	}
	err := tx.QueryRow(ctx, "SELECT switchboard.record_observation($1, $2, $3::numeric, $4, $5, $6, $7, $8, $9, $10)",
		p.PatientExternalRef, p.Kind, p.Value, p.Unit, nullTime(p.EffectiveStart), nullTime(p.EffectiveEnd),
		cmp.Or(p.Source, "app"), nullString(p.SourceID), nullID(p.DeviceID), p.UTCOffsetSeconds).Scan(&id)
	if err != nil {
		return 0, apiError("switchboard.record_observation", err)
	}
	return id, nil
}

// RecordBloodPressureParams are the arguments of
// switchboard.record_blood_pressure: one reading, both values in mm[Hg].
type RecordBloodPressureParams struct {
	PatientExternalRef string
	Systolic           float64
	Diastolic          float64
	EffectiveStart     time.Time
	EffectiveEnd       time.Time // zero: a point in time
	// Source is app (the default), a wearable source or ehr:<endpoint>.
	Source string
	// SourceID identifies the reading at its source; its two observations
	// get SourceID#8480-6 and SourceID#8462-4. Required unless Source is app.
	SourceID         string
	DeviceID         int64  // 0: none
	UTCOffsetSeconds *int32 // nil keeps what is stored
}

// RecordBloodPressure calls switchboard.record_blood_pressure on tx: the
// reading's systolic and diastolic observations, pushed to EHRs as one
// 85354-9 panel. It returns the systolic observation's id. Errors as
// RecordObservation's, naming systolic or diastolic for a bad value.
func RecordBloodPressure(ctx context.Context, tx pgx.Tx, p RecordBloodPressureParams) (int64, error) {
	if err := propagateTrace(ctx, tx); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRow(ctx, "SELECT switchboard.record_blood_pressure($1, $2::numeric, $3::numeric, $4, $5, $6, $7, $8, $9)",
		p.PatientExternalRef, p.Systolic, p.Diastolic, nullTime(p.EffectiveStart), nullTime(p.EffectiveEnd),
		cmp.Or(p.Source, "app"), nullString(p.SourceID), nullID(p.DeviceID), p.UTCOffsetSeconds).Scan(&id)
	if err != nil {
		return 0, apiError("switchboard.record_blood_pressure", err)
	}
	return id, nil
}

// PushFHIROpts are the optional arguments of PushFHIR.
type PushFHIROpts struct {
	// EndpointName sends the resource to that endpoint only; empty: to every
	// enabled endpoint whose push types name the resource's type.
	EndpointName string
	// IdempotencyKey makes the call safe to repeat.
	IdempotencyKey string
}

// PushFHIR calls switchboard.push_fhir on tx with an app-built resource (a
// JSON object with a resourceType and no id, given as json.RawMessage, []byte
// or any value that marshals to one) and returns its fhir_outbound id.
// Errors match ErrInvalidInput naming the field, or ErrIdempotencyConflict.
func PushFHIR(ctx context.Context, tx pgx.Tx, resource any, opts *PushFHIROpts) (int64, error) {
	var b []byte
	switch r := resource.(type) {
	case json.RawMessage:
		b = r
	case []byte:
		b = r
	default:
		var err error
		if b, err = json.Marshal(resource); err != nil {
			return 0, fmt.Errorf("error encoding resource: %w", err)
		}
	}
	if !json.Valid(b) {
		return 0, &APIError{Code: "22023", Message: "switchboard.push_fhir: resource must be a JSON object"}
	}
	if opts == nil {
		opts = &PushFHIROpts{}
	}
	var id int64
	if err := propagateTrace(ctx, tx); err != nil {
		return 0, err
	}
	err := tx.QueryRow(ctx, "SELECT switchboard.push_fhir($1::jsonb, $2, $3)",
		string(b), nullString(opts.EndpointName), nullString(opts.IdempotencyKey)).Scan(&id)
	if err != nil {
		return 0, apiError("switchboard.push_fhir", err)
	}
	return id, nil
}
