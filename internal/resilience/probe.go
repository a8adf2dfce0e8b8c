package resilience

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/jobs"
)

// ProbeWorker works destination_probe jobs: every destination with a probe
// that has been idle for longer than Idle is probed through its own policy
// stack, so its health (and its breaker) stays current when no traffic does
// it. A failed probe is recorded, not retried: the next period probes again.
type ProbeWorker struct {
	river.WorkerDefaults[jobs.DestinationProbeArgs]

	registry *Registry
	probes   map[string]func(context.Context) error
	idle     time.Duration
	logger   *slog.Logger
}

// NewProbeWorker returns a probe worker for the named probes.
func NewProbeWorker(registry *Registry, probes map[string]func(context.Context) error, idle time.Duration, logger *slog.Logger) *ProbeWorker {
	return &ProbeWorker{registry: registry, probes: probes, idle: idle, logger: logger}
}

// Timeout bounds one probe round.
func (w *ProbeWorker) Timeout(*river.Job[jobs.DestinationProbeArgs]) time.Duration {
	return 30 * time.Second
}

// Work probes idle destinations.
func (w *ProbeWorker) Work(ctx context.Context, job *river.Job[jobs.DestinationProbeArgs]) error {
	for name, probe := range w.probes {
		d := w.registry.Get(name)
		if d == nil || !d.Idle(w.idle) {
			continue
		}
		err := d.Call(ctx, true, probe)
		w.registry.Probed(name)
		if err != nil {
			w.logger.WarnContext(ctx, "destination probe failed", slog.String("destination", name), slog.String("error", err.Error()))
		}
	}
	return nil
}
