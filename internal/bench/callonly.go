package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// callOnlyWorker works sms_send jobs by calling the sandbox Twilio through
// the production adapter and nothing else: no message row read, no attempt,
// no provider id stored. It is the ceiling the send path's bookkeeping is
// measured under — River's fetch and completion plus one HTTP request
// through twilio-go, in this process, on these cores.
type callOnlyWorker struct {
	river.WorkerDefaults[jobs.SMSSendArgs]
	sender sms.Sender
}

func (w *callOnlyWorker) Work(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) error {
	id := job.Args.MessageID
	_, err := w.sender.Send(ctx, sms.Outbound{MessageID: id, To: benchTo(id), Body: benchBody,
		StatusCallbackURL: fmt.Sprintf("%s/webhooks/twilio/status?m=%d", callbackBase, id)})
	return err
}

func startCallOnly(ctx context.Context, e *env, p *provider, workers int, poll time.Duration) (*running, error) {
	wcfg := e.workerSettings("sms", workers, poll)
	pool, err := e.pool(ctx, wcfg.DBMaxConns, nil)
	if err != nil {
		return nil, err
	}
	tc := p.twilio()
	tw, err := twilio.New(twilio.Config{
		AccountSID: tc.AccountSID, AuthToken: tc.AuthToken, FromNumber: tc.FromNumber, APIBaseURL: tc.APIBaseURL,
		RequestTimeout: 10 * time.Second, ValidityPeriod: time.Hour,
	}, worker.NewTransport(wcfg))
	if err != nil {
		pool.Close()
		return nil, err
	}
	ws := river.NewWorkers()
	if err := river.AddWorkerSafely(ws, &callOnlyWorker{sender: tw}); err != nil {
		pool.Close()
		return nil, err
	}
	client, err := worker.NewClient(wcfg, pool, ws, nil, e.logger)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return start(ctx, client, pool, nil)
}

var countSMSCompleted = countQuery("SELECT count(*) FROM switchboard.river_job WHERE kind = 'sms_send' AND state = 'completed'")

// e2eCallOnly drains pre-inserted messages through callOnlyWorker.
func e2eCallOnly(ctx context.Context, e *env, p *provider) error {
	cfg := e.cfg.E2E
	e.logf("e2e: River + provider call only (no bookkeeping), %d messages, %d workers", cfg.Messages, e.cfg.Workers)
	rss, err := drain(ctx, e, p, "callonly", startCallOnly, "sms_send jobs completed", countSMSCompleted)
	if err != nil {
		return err
	}
	arrivals := p.take()
	e.report.Results = append(e.report.Results, Result{
		Scenario: ScenarioE2E, Group: groupThroughput, Throughput: spanRate(firsts(arrivals)),
		Case:    fmt.Sprintf("River + sandbox Twilio call only (0 ms), no bookkeeping, %d messages (reference)", cfg.Messages),
		Note:    fmt.Sprintf("%d of %d reached the provider; ", len(arrivals), cfg.Messages),
		PeakRSS: rss, RSSOf: "bench, in-process worker",
	})
	return nil
}
