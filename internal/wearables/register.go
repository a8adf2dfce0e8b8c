package wearables

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/jobs"
)

// Register adds every wearables worker to workers and returns the periodic
// jobs to register on the client (the poll). It returns an error when deps
// or the configuration are invalid.
func Register(ctx context.Context, workers *river.Workers, deps Deps) ([]*river.PeriodicJob, error) {
	s, err := newService(deps)
	if err != nil {
		return nil, err
	}
	limits := deps.UnavailableLimits
	if limits == nil {
		return nil, errors.New("wearables: Deps.UnavailableLimits is required (worker.UnavailableLimits reads them)")
	}
	for _, add := range []func() error{
		func() error {
			return river.AddWorkerSafely(workers, &SyncWorker{s: s, unavailableLimit: limits[jobs.KindWearableSync]})
		},
		func() error { return river.AddWorkerSafely(workers, &BackfillWorker{s: s}) },
		func() error { return river.AddWorkerSafely(workers, &NotificationWorker{s: s}) },
		func() error { return river.AddWorkerSafely(workers, &SummarizeWorker{s: s}) },
		func() error { return river.AddWorkerSafely(workers, &PollWorker{s: s}) },
		func() error {
			return river.AddWorkerSafely(workers, &RevokeWorker{s: s, unavailableLimit: limits[jobs.KindWearableRevoke]})
		},
		func() error { return river.AddWorkerSafely(workers, &IngestWorker{s: s}) },
	} {
		if err := add(); err != nil {
			return nil, fmt.Errorf("error adding wearables worker: %w", err)
		}
	}
	return []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(s.cfg.PollInterval),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.WearablePollArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}, nil
}

// Probe is a cheap read telling whether Google Health answers (for
// resilience.NewProbeWorker's map, key "google_health").
func Probe(deps Deps) func(context.Context) error {
	s, err := newService(deps)
	if err != nil {
		return func(context.Context) error { return err }
	}
	return s.api.Probe
}
