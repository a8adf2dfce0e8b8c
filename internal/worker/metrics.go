package worker

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

var (
	jobsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_jobs_total",
		Help: "Jobs worked, by kind and outcome (completed, error, snoozed, cancelled).",
	}, []string{"kind", "outcome"})
	jobDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchboard_job_duration_seconds",
		Help:    "Time spent working a job, by kind.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"kind"})
)

func observeJob(job *rivertype.JobRow, err error, d time.Duration) {
	outcome := "completed"
	var snooze *river.JobSnoozeError
	var cancel *river.JobCancelError
	switch {
	case err == nil:
	case errors.As(err, &snooze):
		outcome = "snoozed"
	case errors.As(err, &cancel):
		outcome = "cancelled"
	default:
		outcome = "error"
	}
	jobsTotal.WithLabelValues(job.Kind, outcome).Inc()
	jobDuration.WithLabelValues(job.Kind).Observe(d.Seconds())
}
