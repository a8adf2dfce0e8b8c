package jobs

import "github.com/riverqueue/river"

// Kinds run by the workers themselves (periodic jobs).
const (
	KindDestinationProbe = "destination_probe"
	KindMaintenance      = "maintenance"
)

// DestinationProbeArgs are the args of destination_probe: none; the job
// probes every destination that has been idle.
type DestinationProbeArgs struct{}

// Kind implements river.JobArgs.
func (DestinationProbeArgs) Kind() string { return KindDestinationProbe }

// InsertOpts mirrors the destination_probe row of switchboard.job_kinds.
func (DestinationProbeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, Priority: 4, MaxAttempts: 3}
}

// MaintenanceArgs are the args of maintenance: none.
type MaintenanceArgs struct{}

// Kind implements river.JobArgs.
func (MaintenanceArgs) Kind() string { return KindMaintenance }

// InsertOpts mirrors the maintenance row of switchboard.job_kinds.
func (MaintenanceArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, Priority: 4, MaxAttempts: 3}
}
