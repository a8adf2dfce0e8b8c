package wearables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-health/switchboard/db"
)

// numeric is v as a numeric, through its shortest decimal text.
func numeric(v float64) pgtype.Numeric {
	return numericText(strconv.FormatFloat(v, 'f', -1, 64))
}

// numericText is exact decimal text as a numeric (no float on the way).
func numericText(s string) pgtype.Numeric {
	var n pgtype.Numeric
	_ = n.Scan(s)
	return n
}

func numericFloat(n pgtype.Numeric) float64 {
	f, _ := n.Float64Value()
	return f.Float64
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// stored is what storing a batch did.
type stored struct {
	ids      []int64 // new or changed samples (to promote)
	new      int
	highFreq bool
	rejected int
}

// connRef is the part of a connection storing needs.
type connRef struct {
	ID, PatientID int64
}

// store normalizes and stores ms (idempotent by source and source id): a
// sample already stored is skipped, or updated when its source changed its
// value (a day's total). uploadID ties Apple samples to their upload.
func (s *Service) store(ctx context.Context, tx pgx.Tx, c connRef, ms []Measurement, uploadID *int64) (stored, error) {
	var out stored
	devices := map[string]int64{}
	now := s.now()
	for i := range ms {
		m := &ms[i]
		Assess(m, now)
		var deviceID *int64
		if m.Device != nil && m.Device.ExternalID != "" {
			id, ok := devices[m.Device.ExternalID]
			if !ok {
				var err error
				id, err = s.q.DeviceUpsert(ctx, tx, db.DeviceUpsertParams{
					PatientID: c.PatientID, Source: m.Source, ExternalID: truncate(m.Device.ExternalID, 200),
					Manufacturer: nilIfEmpty(m.Device.Manufacturer), Model: nilIfEmpty(m.Device.Model), DisplayName: nilIfEmpty(m.Device.DisplayName),
				})
				if err != nil {
					return out, fmt.Errorf("error recording device: %w", err)
				}
				devices[m.Device.ExternalID] = id
			}
			deviceID = &id
		}
		var offset *int32
		if m.UTCOffset != nil {
			o := int32(*m.UTCOffset)
			offset = &o
		}
		value := numeric(m.Value)
		switch {
		case m.Decimal != "":
			value = numericText(m.Decimal)
		case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
			value = numeric(0) // kept with its rejection reason; numeric has no NaN here
		}
		var srcValue pgtype.Numeric
		if m.SourceValue != "" {
			srcValue = numericText(m.SourceValue)
		}
		id, err := s.q.SampleInsert(ctx, tx, db.SampleInsertParams{
			ConnectionID: c.ID, PatientID: c.PatientID, Kind: m.Kind, Value: value, Unit: m.Unit,
			EffectiveStart: m.Start, EffectiveEnd: m.End, UtcOffsetSeconds: offset, Source: m.Source,
			SourceID: m.SourceID, DeviceID: deviceID, Interpretation: nilIfEmpty(m.Interpretation),
			RejectionReason: nilIfEmpty(m.Rejection), HighFrequency: m.HighFrequency, UploadID: uploadID,
			SourceValue: srcValue, SourceUnit: nilIfEmpty(m.SourceUnit),
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			samplesTotal.WithLabelValues(m.Source, "duplicate").Inc()
			if m.HighFrequency || m.Raw {
				continue
			}
			id, err = s.q.SampleUpdateValue(ctx, tx, db.SampleUpdateValueParams{
				Source: m.Source, SourceID: m.SourceID, Value: value, EffectiveEnd: m.End,
				Interpretation: nilIfEmpty(m.Interpretation), RejectionReason: nilIfEmpty(m.Rejection),
				SourceValue: srcValue, SourceUnit: nilIfEmpty(m.SourceUnit),
			})
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return out, fmt.Errorf("error updating sample: %w", err)
			}
			out.ids = append(out.ids, id)
		case err != nil:
			return out, fmt.Errorf("error storing sample: %w", err)
		default:
			out.new++
			out.ids = append(out.ids, id)
			out.highFreq = out.highFreq || m.HighFrequency
			switch {
			case m.Rejection != "":
				out.rejected++
				samplesTotal.WithLabelValues(m.Source, "rejected").Inc()
			case m.Interpretation != "":
				samplesTotal.WithLabelValues(m.Source, "flagged").Inc()
			default:
				samplesTotal.WithLabelValues(m.Source, "new").Inc()
			}
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// promote records the valid samples among ids as observations through
// switchboard.record_observation (which enqueues fhir_push in this
// transaction), with their interpretation and original offset.
func (s *Service) promote(ctx context.Context, tx pgx.Tx, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	rows, err := s.q.SamplesToPromote(ctx, tx, ids)
	if err != nil {
		return 0, fmt.Errorf("error loading samples: %w", err)
	}
	for _, r := range rows {
		obsID, err := s.q.RecordObservation(ctx, tx, db.RecordObservationParams{
			PatientExternalRef: r.PatientExternalRef, Kind: r.Kind, Value: r.Value, Unit: r.Unit,
			EffectiveStart: r.EffectiveStart, EffectiveEnd: r.EffectiveEnd, Source: r.Source, SourceID: r.SourceID,
			DeviceID: r.DeviceID,
		})
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22023" {
				// Assess mirrors record_observation's checks; a refusal
				// here is our bug, reported without the value.
				return 0, fmt.Errorf("record_observation refused sample %d (%s): %s", r.ID, r.Kind, pgErr.Message)
			}
			return 0, fmt.Errorf("error recording observation: %w", err)
		}
		if err := s.q.SampleSetObservation(ctx, tx, db.SampleSetObservationParams{ID: r.ID, ObservationID: &obsID}); err != nil {
			return 0, err
		}
		if err := s.q.ObservationSetWearableFields(ctx, tx, db.ObservationSetWearableFieldsParams{
			ID: obsID, Interpretation: r.Interpretation, UtcOffsetSeconds: r.UtcOffsetSeconds,
		}); err != nil {
			return 0, fmt.Errorf("error recording observation details: %w", err)
		}
	}
	return len(rows), nil
}

// markDeleted marks samples deleted at their source entered-in-error; their
// observations too, with the correction pushed. It returns whether a
// high-frequency period needs its summary again.
func (s *Service) markDeleted(ctx context.Context, tx pgx.Tx, connID int64, source string, sourceIDs []string) (bool, error) {
	hf := false
	for _, sid := range sourceIDs {
		row, err := s.q.SampleMarkEnteredInError(ctx, tx, db.SampleMarkEnteredInErrorParams{Source: source, SourceID: sid, ConnectionID: connID})
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return hf, fmt.Errorf("error marking sample deleted: %w", err)
		}
		hf = hf || row.HighFrequency
		if row.ObservationID != nil {
			if _, err := s.q.ObservationMarkEnteredInError(ctx, tx, *row.ObservationID); err != nil {
				return hf, fmt.Errorf("error marking observation entered-in-error: %w", err)
			}
		}
	}
	return hf, nil
}
