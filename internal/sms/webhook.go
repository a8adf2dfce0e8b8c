package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// OrphanWindow is how long a status report for a provider message id no
// message carries is retried before it is given up: the report may have
// overtaken the commit that records the id (seconds at most), but a validly
// signed report for an id Switchboard never sent must not stay pending.
// Given up, the webhook stays recorded (state ignored) and
// switchboard_sms_orphan_reports_total counts it.
const OrphanWindow = 2 * time.Minute

// orphanReports counts status reports given up because no message has
// their provider id; the label is the provider, never the id.
var orphanReports = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "switchboard_sms_orphan_reports_total",
	Help: "Status reports for a provider message id no message carries, given up after the orphan window, by provider.",
}, []string{"provider"})

// WebhookWorker works webhook_process jobs: it applies one stored webhook.
type WebhookWorker struct {
	river.WorkerDefaults[jobs.WebhookProcessArgs]

	pool    *pgxpool.Pool
	parsers map[string]ReportParser
	inbound InboundConfig
	logger  *slog.Logger
	q       *db.Queries
	// orphanWindow is how long a report for an unknown provider id is
	// retried: it may have overtaken the commit that recorded the id.
	orphanWindow time.Duration
}

// NewWebhookWorker returns a worker using parsers keyed by provider name.
// A parser that also implements InboundParser handles inbound SMS
// (event types message.inbound and message.received) with inbound's rules.
func NewWebhookWorker(pool *pgxpool.Pool, parsers map[string]ReportParser, inbound InboundConfig, logger *slog.Logger) *WebhookWorker {
	return &WebhookWorker{pool: pool, parsers: parsers, inbound: inbound, logger: logger, q: db.New(), orphanWindow: OrphanWindow}
}

// isInbound reports whether an inbox event type is an inbound SMS.
func isInbound(eventType string) bool {
	return eventType == "message.inbound" || eventType == "message.received"
}

// Timeout bounds one run; applying a webhook is a few statements.
func (w *WebhookWorker) Timeout(*river.Job[jobs.WebhookProcessArgs]) time.Duration {
	return 30 * time.Second
}

// NextRetry retries database trouble quickly: status reports should land in
// seconds, and the work is idempotent.
func (w *WebhookWorker) NextRetry(job *river.Job[jobs.WebhookProcessArgs]) time.Time {
	return time.Now().Add(min(time.Duration(len(job.Errors)+1)*2*time.Second, time.Minute))
}

// Work applies the webhook named by the job.
func (w *WebhookWorker) Work(ctx context.Context, job *river.Job[jobs.WebhookProcessArgs]) error {
	var result error
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		hook, err := w.q.WebhookGetForUpdate(ctx, tx, job.Args.WebhookID)
		if errors.Is(err, pgx.ErrNoRows) {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			result = river.JobCancel(fmt.Errorf("inbound webhook %d does not exist", job.Args.WebhookID))
			return nil
		}
		if err != nil {
			return fmt.Errorf("error loading webhook: %w", err)
		}
		if hook.State != "pending" {
			return w.complete(ctx, tx, job)
		}
		log := w.logger.With(slog.Int64("job_id", job.ID), slog.Int64("webhook_id", hook.ID), slog.String("vendor", hook.Provider))
		parser, ok := w.parsers[hook.Provider]
		if !ok {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			result = river.JobCancel(fmt.Errorf("no status parser for provider %q", hook.Provider))
			return nil
		}
		if isInbound(hook.EventType) {
			ip, ok := parser.(InboundParser)
			if !ok {
				_ = river.MetadataSet(ctx, "outcome_class", "permanent")
				result = river.JobCancel(fmt.Errorf("no inbound parser for provider %q", hook.Provider))
				return nil
			}
			in, err := ip.ParseInbound(hook.EventType, hook.RawBody)
			if err != nil {
				log.WarnContext(ctx, "ignoring inbound webhook that cannot be parsed", slog.String("error", err.Error()))
				return w.done(ctx, tx, job, hook.ID, "ignored")
			}
			if err := w.applyInbound(ctx, tx, hook.ID, in); err != nil {
				return err
			}
			return w.done(ctx, tx, job, hook.ID, "processed")
		}
		report, err := parser.ParseReport(hook.EventType, hook.RawBody)
		if err != nil {
			log.WarnContext(ctx, "ignoring webhook that cannot be parsed", slog.String("error", err.Error()))
			return w.done(ctx, tx, job, hook.ID, "ignored")
		}
		err = ApplyReport(ctx, w.q, tx, report, &hook.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			if time.Since(hook.ReceivedAt) < w.orphanWindow {
				result = river.JobSnooze(3 * time.Second)
				return nil
			}
			log.WarnContext(ctx, "giving up a status report for an unknown provider message id", slog.Duration("after", w.orphanWindow))
			orphanReports.WithLabelValues(hook.Provider).Inc()
			return w.done(ctx, tx, job, hook.ID, "ignored")
		}
		if err != nil {
			return err
		}
		return w.done(ctx, tx, job, hook.ID, "processed")
	})
	if err != nil {
		return fmt.Errorf("error processing webhook: %w", err)
	}
	return result
}

func (w *WebhookWorker) done(ctx context.Context, tx pgx.Tx, job *river.Job[jobs.WebhookProcessArgs], id int64, state string) error {
	if err := w.q.WebhookMarkDone(ctx, tx, db.WebhookMarkDoneParams{ID: id, State: state}); err != nil {
		return fmt.Errorf("error marking webhook %s: %w", state, err)
	}
	return w.complete(ctx, tx, job)
}

func (w *WebhookWorker) complete(ctx context.Context, tx pgx.Tx, job *river.Job[jobs.WebhookProcessArgs]) error {
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("error completing job: %w", err)
	}
	return nil
}
