package fhir

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
)

// A blood pressure reading is two observations of one patient and source,
// kinds blood_pressure_systolic and blood_pressure_diastolic, whose
// source_ids are "<reading>#8480-6" and "<reading>#8462-4"
// (switchboard.record_blood_pressure records both; the pull stores an EHR's
// 85354-9 panel the same way). The pair is pushed as one panel Observation
// (MapBloodPressure) that carries the systolic observation's identifier and
// fhir_links row, so either half's push writes the same resource. A blood
// pressure observation without that suffix is pushed alone, as before.

// observationPush is what one observation push writes: the observation
// whose id, patient and device the resource carries, and its mapper.
type observationPush struct {
	anchor db.Observation
	build  func(MapOptions) ([]byte, error)
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

// observationToPush resolves what pushing o writes: o itself, or for half
// of a blood pressure reading, the reading's panel.
func (w *PushWorker) observationToPush(ctx context.Context, o db.Observation) (observationPush, error) {
	kinds, err := w.kinds.Get(ctx)
	if err != nil {
		return observationPush{}, err
	}
	otherSID, otherKind, otherCode, ok := readingHalf(o)
	if !ok {
		return observationPush{anchor: o, build: func(opts MapOptions) ([]byte, error) { return MapObservation(o, kinds, opts) }}, nil
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
