package fhir

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// A blood pressure reading is two observations of one patient and source,
// kinds blood_pressure_systolic and blood_pressure_diastolic, pushed as one
// 85354-9 panel Observation (MapBloodPressure) that carries one half's
// identifier and fhir_links row (the anchor), so either half's push writes
// the same resource. The halves are found two ways:
//
//   - source_ids "<reading>#8480-6" and "<reading>#8462-4"
//     (switchboard.record_blood_pressure records both; the pull stores an
//     EHR's 85354-9 panel the same way). The anchor is the systolic half; a
//     half whose partner is not recorded yet waits (IncompleteReadingError).
//   - wearable samples (Apple Health, whose source_ids are sample UUIDs used
//     for deletions, so they cannot carry a suffix): the other kind's
//     observation of the same patient, source, device and effective start
//     and end, found in both directions and exactly once (HealthKit stores a
//     correlation's two samples with identical dates). One upload is
//     promoted in one transaction, so both halves exist when its pushes
//     run. Without a partner the observation is pushed alone (still valid
//     FHIR); with two candidates either way it is pushed alone and logged,
//     never guessed. The anchor is the systolic half, unless only the
//     diastolic half is linked on the endpoint (it went out alone before its
//     partner arrived in a later upload): then the panel replaces that
//     resource rather than leaving a lone 8462-4 beside it. A systolic that
//     went out alone is replaced by the panel the same way, being the
//     anchor.

// observationPush is what one observation push writes: the observation
// whose id, patient and device the resource carries, and its mapper.
type observationPush struct {
	anchor db.Observation
	build  func(MapOptions) ([]byte, error)
	// link is the anchor's link on the endpoint when panelAnchor read it
	// choosing the anchor (under the reading's lock: pushObservation); nil
	// when not read yet.
	link *knownLink
}

// IncompleteReadingError: one half of a blood pressure reading is there,
// the other not yet. Retried (its own record_observation will push the
// panel when it comes); a reading that stays incomplete ends as a dead
// letter naming the observation and the missing component.
type IncompleteReadingError struct {
	ObservationID int64
	Missing       string // LOINC code of the missing component
}

func (e *IncompleteReadingError) Error() string {
	return fmt.Sprintf("observation %d is half of a blood pressure reading whose %s component is not recorded yet; "+
		"a reading is pushed as one panel", e.ObservationID, e.Missing)
}

// readingHalf reports whether o is one half of a blood pressure reading,
// and the source_id of its other half and that half's kind.
func readingHalf(o db.Observation) (otherSourceID, otherKind, otherCode string, ok bool) {
	switch {
	case o.Kind == "blood_pressure_systolic" && strings.HasSuffix(o.SourceID, "#"+LOINCSystolic):
		return strings.TrimSuffix(o.SourceID, LOINCSystolic) + LOINCDiastolic, "blood_pressure_diastolic", LOINCDiastolic, true
	case o.Kind == "blood_pressure_diastolic" && strings.HasSuffix(o.SourceID, "#"+LOINCDiastolic):
		return strings.TrimSuffix(o.SourceID, LOINCDiastolic) + LOINCSystolic, "blood_pressure_systolic", LOINCSystolic, true
	}
	return "", "", "", false
}

// observationToPush resolves what pushing o to endpoint writes: o itself,
// or for half of a blood pressure reading, the reading's panel.
func (w *PushWorker) observationToPush(ctx context.Context, endpoint int64, o db.Observation) (observationPush, error) {
	kinds, err := w.kinds.Get(ctx)
	if err != nil {
		return observationPush{}, err
	}
	alone := observationPush{anchor: o, build: func(opts MapOptions) ([]byte, error) { return MapObservation(o, kinds, opts) }}
	otherSID, otherKind, otherCode, ok := readingHalf(o)
	if !ok {
		other, found, err := w.wearablePartner(ctx, o)
		if err != nil || !found {
			return alone, err
		}
		sys, dia := o, other
		if o.Kind == "blood_pressure_diastolic" {
			sys, dia = other, o
		}
		anchor, link, err := w.panelAnchor(ctx, endpoint, sys, dia)
		if err != nil {
			return observationPush{}, err
		}
		return observationPush{anchor: anchor, link: &link, build: func(opts MapOptions) ([]byte, error) {
			return mapBloodPressure(anchor.ID, sys, dia, kinds, opts)
		}}, nil
	}
	other, err := w.q.ObservationGetBySource(ctx, w.deps.Pool, db.ObservationGetBySourceParams{Source: o.Source, SourceID: otherSID})
	if errors.Is(err, pgx.ErrNoRows) {
		return observationPush{}, &IncompleteReadingError{ObservationID: o.ID, Missing: otherCode}
	}
	if err != nil {
		return observationPush{}, fmt.Errorf("error loading the other half of a blood pressure reading: %w", err)
	}
	if other.PatientID != o.PatientID || other.Kind != otherKind {
		return observationPush{}, &ValidationError{ResourceType: "Observation", Issues: []string{fmt.Sprintf(
			"observation %d: the source_id of its blood pressure reading's %s component names observation %d of another patient or kind",
			o.ID, otherCode, other.ID)}}
	}
	sys, dia := o, other
	if o.Kind == "blood_pressure_diastolic" {
		sys, dia = other, o
	}
	return observationPush{anchor: sys, build: func(opts MapOptions) ([]byte, error) { return MapBloodPressure(sys, dia, kinds, opts) }}, nil
}

// bloodPressurePartnerKind is the kind of the other half of a blood
// pressure observation of kind.
var bloodPressurePartnerKind = map[string]string{
	"blood_pressure_systolic":  "blood_pressure_diastolic",
	"blood_pressure_diastolic": "blood_pressure_systolic",
}

// wearablePartner finds the other half of a wearable blood pressure
// reading: the one observation of the other kind with o's patient, source,
// device and effective times, whose own only such partner is o. Anything
// else (none, or an ambiguous pair) reports found false: o goes alone.
func (w *PushWorker) wearablePartner(ctx context.Context, o db.Observation) (db.Observation, bool, error) {
	if _, ok := bloodPressurePartnerKind[o.Kind]; !ok || strings.HasPrefix(o.Source, "ehr:") {
		return db.Observation{}, false, nil
	}
	partners := func(of db.Observation) ([]db.Observation, error) {
		rows, err := w.q.ObservationBloodPressurePartners(ctx, w.deps.Pool, db.ObservationBloodPressurePartnersParams{
			PatientID: of.PatientID, Source: of.Source, Kind: bloodPressurePartnerKind[of.Kind],
			EffectiveStart: of.EffectiveStart, EffectiveEnd: of.EffectiveEnd, DeviceID: of.DeviceID})
		if err != nil {
			return nil, fmt.Errorf("error loading the other half of a blood pressure reading: %w", err)
		}
		return rows, nil
	}
	cands, err := partners(o)
	if err != nil || len(cands) == 0 {
		return db.Observation{}, false, err
	}
	if len(cands) == 1 {
		back, err := partners(cands[0])
		if err != nil {
			return db.Observation{}, false, err
		}
		if len(back) == 1 && back[0].ID == o.ID {
			return cands[0], true, nil
		}
	}
	w.deps.Logger.WarnContext(ctx, "blood pressure observation pushed alone: its reading's other half is ambiguous",
		slog.Int64("observation_id", o.ID), slog.String("kind", o.Kind), slog.String("source", o.Source))
	return db.Observation{}, false, nil
}

// panelAnchor is the half whose identifier and fhir_links row a wearable
// reading's panel carries on endpoint: the systolic, unless only the
// diastolic is linked there already. It returns the anchor's link as read,
// for the write.
func (w *PushWorker) panelAnchor(ctx context.Context, endpoint int64, sys, dia db.Observation) (db.Observation, knownLink, error) {
	linked := func(o db.Observation) (knownLink, error) {
		l, err := w.q.FHIRLinkGet(ctx, w.deps.Pool, db.FHIRLinkGetParams{EndpointID: endpoint, Entity: jobs.FHIREntityObservation, EntityID: o.ID})
		if errors.Is(err, pgx.ErrNoRows) {
			return knownLink{}, nil
		}
		return knownLink{row: l, found: err == nil}, err
	}
	sysLink, err := linked(sys)
	if err != nil || sysLink.found {
		return sys, sysLink, err
	}
	diaLink, err := linked(dia)
	if err != nil || !diaLink.found {
		return sys, sysLink, err
	}
	return dia, diaLink, nil
}

// readingLockKey names a blood pressure reading on an endpoint for
// oneAtATime: both halves of a reading share the patient and the effective
// start (record_blood_pressure, the pull and HealthKit's correlations alike),
// so their pushes take the same key without resolving the pair first.
func readingLockKey(endpoint int64, o db.Observation) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "switchboard fhir bp %d %d %d", endpoint, o.PatientID, o.EffectiveStart.UnixMicro())
	return int64(h.Sum64())
}

// oneAtATime runs fn while holding a transaction-scoped advisory lock on
// key: pushes of the two halves of one reading (two jobs, possibly on two
// workers) resolve the pair and write the panel one after the other, so the
// second finds the first's link and sends nothing — instead of both
// creating the panel at once, which a server whose conditional create is
// not atomic would store twice. The lock's transaction holds a connection
// for the push's length and writes nothing; it works through PgBouncer's
// transaction pooling.
func (w *PushWorker) oneAtATime(ctx context.Context, key int64, fn func() error) error {
	tx, err := w.deps.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("error locking the blood pressure reading: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", key); err != nil {
		return fmt.Errorf("error locking the blood pressure reading: %w", err)
	}
	return fn()
}
