package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/telemetry"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestOneTraceFromAppToWebhook follows one message: the app's span around
// its transaction, the send job, the request to the sandbox Twilio (which
// must carry the same trace id in its traceparent header), the signed
// status webhook into the api and the job that turns it into an event — all
// one trace. No span attribute may hold the phone number or the body.
func TestOneTraceFromAppToWebhook(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := telemetry.NewProvider(nil, rec)
	telemetry.Install(tp)
	t.Cleanup(telemetry.Uninstall)

	var mu sync.Mutex
	var vendorTrace []string
	capture := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json") {
				mu.Lock()
				vendorTrace = append(vendorTrace, r.Header.Get("traceparent"))
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}
	s := startStack(t, dbtest.NewDatabase(t), nil, capture)

	const phone, body = "+14155550123", "Your results are ready: glucose 7.9"
	ctx, root := tp.Tracer("app").Start(s.ctx, "app: book appointment")
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "trace-1", To: phone, Body: body})
		return err
	}))
	root.End()
	traceID := root.SpanContext().TraceID()

	s.waitFor("the message to be delivered", func() bool {
		var st string
		require.NoError(t, s.pool.QueryRow(s.ctx, `SELECT status FROM switchboard.messages WHERE id = $1`, id).Scan(&st))
		return st == "delivered"
	})
	var eventJob bool
	s.waitFor("the delivery webhook's job to be traced", func() bool {
		for _, sp := range rec.Ended() {
			if sp.SpanContext().TraceID() == traceID && sp.Name() == "river.work/"+jobs.KindWebhookProcess {
				eventJob = true
			}
		}
		return eventJob
	})

	mu.Lock()
	require.NotEmpty(t, vendorTrace)
	sent := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": vendorTrace[0]}))
	mu.Unlock()
	require.Equal(t, traceID, sent.TraceID(), "the request to the vendor carries the app's trace id")

	names := map[string]bool{}
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() == traceID {
			names[sp.Name()] = true
		}
		for _, kv := range sp.Attributes() {
			v := kv.Value.Emit()
			require.NotContains(t, v, "4155550123", "span %q attribute %s holds the phone number", sp.Name(), kv.Key)
			require.NotContains(t, v, "glucose", "span %q attribute %s holds the body", sp.Name(), kv.Key)
		}
	}
	require.True(t, names["river.work/"+jobs.KindSMSSend], "send job in the trace: %v", names)
	require.True(t, names["POST /webhooks/twilio/status"], "status webhook in the trace: %v", names)
	require.True(t, names["river.work/"+jobs.KindWebhookProcess], "webhook job in the trace: %v", names)
}
