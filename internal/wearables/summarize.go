package wearables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// SummarizeWorker works wearable_summarize jobs.
type SummarizeWorker struct {
	river.WorkerDefaults[jobs.WearableSummarizeArgs]
	s *Service
}

// Work summarizes a connection's closed periods.
func (w *SummarizeWorker) Work(ctx context.Context, job *river.Job[jobs.WearableSummarizeArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGet(ctx, tx, job.Args.ConnectionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		p, err := s.q.PatientGet(ctx, tx, conn.PatientID)
		if err != nil {
			return err
		}
		if _, err := s.summarize(ctx, tx, conn, p.ExternalRef); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// summarize folds the unsummarized high-frequency samples of every closed
// period of a connection into one observation per period (the mean, with
// count, min and max; flagged when any sample was abnormal).
func (s *Service) summarize(ctx context.Context, tx pgx.Tx, conn db.SwitchboardDeviceConnection, externalRef string) (int, error) {
	period := s.cfg.SummaryPeriod
	periods, err := s.q.SamplesUnsummarizedPeriods(ctx, tx, db.SamplesUnsummarizedPeriodsParams{
		PeriodSeconds: int64(period / time.Second), ConnectionID: conn.ID,
	})
	if err != nil {
		return 0, fmt.Errorf("error listing periods: %w", err)
	}
	source := SourceGoogle
	if conn.Provider == "apple_health" {
		source = SourceApple
	}
	n := 0
	for _, p := range periods {
		start, end := p.PeriodStart.UTC(), p.PeriodStart.UTC().Add(period)
		agg, err := s.q.SamplesSummarize(ctx, tx, db.SamplesSummarizeParams{ConnectionID: conn.ID, Kind: p.Kind, PeriodStart: start, PeriodEnd: end})
		if err != nil {
			return n, fmt.Errorf("error summarizing: %w", err)
		}
		sid := fmt.Sprintf("summary:%d:%s:%d:%d", conn.ID, p.Kind, start.Unix(), int64(period/time.Second))
		if agg.N == 0 {
			// Every sample of the period was deleted: correct the summary.
			old, err := s.q.ObservationFindBySource(ctx, tx, db.ObservationFindBySourceParams{Source: source, SourceID: sid})
			if err == nil {
				if _, err := s.q.ObservationMarkEnteredInError(ctx, tx, old.ID); err != nil {
					return n, err
				}
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return n, err
			}
		} else {
			mean, lo, hi := numericFloat(agg.Mean), numericFloat(agg.MinValue), numericFloat(agg.MaxValue)
			mean = math.Round(mean*10) / 10
			m := Measurement{Kind: p.Kind, Value: mean, Unit: agg.Unit, Start: start, End: &end, Source: source, SourceID: sid}
			Assess(&m, s.now())
			if m.Rejection == "" {
				me := Measures[p.Kind]
				if me.FlagBelow != nil && lo < *me.FlagBelow {
					m.Interpretation = FlagLow
				}
				if me.FlagAbove != nil && hi > *me.FlagAbove {
					m.Interpretation = FlagHigh
				}
				obsID, err := s.q.RecordObservation(ctx, tx, db.RecordObservationParams{
					PatientExternalRef: externalRef, Kind: p.Kind, Value: numeric(mean), Unit: agg.Unit,
					EffectiveStart: start, EffectiveEnd: &end, Source: source, SourceID: sid,
				})
				if err != nil {
					return n, fmt.Errorf("error recording summary: %w", err)
				}
				var offset *int32
				if o, ok := agg.UtcOffsetSeconds.(int32); ok {
					offset = &o
				}
				count := agg.N
				if err := s.q.ObservationSetWearableFields(ctx, tx, db.ObservationSetWearableFieldsParams{
					ID: obsID, Interpretation: nilIfEmpty(m.Interpretation), UtcOffsetSeconds: offset,
					SummaryPeriod: pgtype.Interval{Microseconds: period.Microseconds(), Valid: true},
					SummaryCount:  &count, SummaryMin: agg.MinValue, SummaryMax: agg.MaxValue,
				}); err != nil {
					return n, err
				}
				n++
			}
		}
		if err := s.q.SamplesMarkSummarized(ctx, tx, db.SamplesMarkSummarizedParams{ConnectionID: conn.ID, Kind: p.Kind, PeriodStart: start, PeriodEnd: end}); err != nil {
			return n, err
		}
	}
	return n, nil
}
