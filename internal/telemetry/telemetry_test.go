package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-health/switchboard/internal/telemetry"
)

func install(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	tp := telemetry.NewProvider(nil, rec)
	telemetry.Install(tp)
	t.Cleanup(telemetry.Uninstall)
	return rec, tp
}

func TestWebhookJoinsTheMessagesTrace(t *testing.T) {
	rec, tp := install(t)
	_, parent := tp.Tracer("t").Start(context.Background(), "send")
	parent.End()
	tpHeader := telemetry.Traceparent(trace.ContextWithSpan(context.Background(), parent))
	r := httptest.NewRequest(http.MethodPost, "/webhooks/twilio/status?m=42&To=%2B14155550123", nil)
	ctx, span := telemetry.StartWebhookSpan(r, time.Now(), true, func(_ context.Context, id int64) (string, error) {
		require.Equal(t, int64(42), id)
		return tpHeader, nil
	})
	require.Equal(t, parent.SpanContext().TraceID(), trace.SpanContextFromContext(ctx).TraceID())
	telemetry.EndWebhookSpan(span, http.StatusOK)
	var server sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "POST /webhooks/twilio/status" {
			server = s
		}
	}
	require.NotNil(t, server, "spans: %v", rec.Ended())
	require.Equal(t, parent.SpanContext().TraceID(), server.SpanContext().TraceID())
	require.Equal(t, trace.SpanKindServer, server.SpanKind())
	for _, kv := range server.Attributes() {
		require.NotContains(t, kv.Value.Emit(), "4155550123", kv.Key)
	}
}

func TestStripQuery(t *testing.T) {
	require.Equal(t, "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
		telemetry.StripQuery("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B14155550123&PageSize=50"))
	require.Equal(t, "/oauth/callback", telemetry.StripQuery("/oauth/callback?code=secret#x"))
}

// TestVendorCallSpansHoldNoPhoneNumbers: Twilio's message list filters by
// To in the query string; the client span keeps the path only.
func TestVendorCallSpansHoldNoPhoneNumbers(t *testing.T) {
	rec, tp := install(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NotEmpty(t, r.Header.Get("traceparent"), "the vendor request carries the trace")
	}))
	defer srv.Close()
	ctx, span := tp.Tracer("t").Start(context.Background(), "job")
	client := &http.Client{Transport: telemetry.Transport(http.DefaultTransport)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/2010-04-01/Accounts/AC1/Messages.json?To=%2B14155550123&PageSize=20", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	span.End()
	found := false
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			require.NotContains(t, kv.Value.Emit(), "4155550123", "%s %s", s.Name(), kv.Key)
			if kv.Key == "url.full" {
				found = true
				require.Equal(t, srv.URL+"/2010-04-01/Accounts/AC1/Messages.json", kv.Value.AsString())
			}
		}
	}
	require.True(t, found, "the client span records url.full")
}

// TestWebhookWithoutAMessageIDLooksNothingUp: only a whole positive id in
// ?m= names a message, only a verified webhook looks it up, and a
// traceparent header wins.
func TestWebhookWithoutAMessageIDLooksNothingUp(t *testing.T) {
	install(t)
	noLookup := func(target string) func(context.Context, int64) (string, error) {
		return func(context.Context, int64) (string, error) {
			t.Fatalf("looked up a message for %s", target)
			return "", nil
		}
	}
	for _, target := range []string{"/webhooks/twilio/status", "/webhooks/twilio/status?m=42abc", "/webhooks/twilio/status?m=-1"} {
		_, span := telemetry.StartWebhookSpan(httptest.NewRequest(http.MethodPost, target, nil), time.Now(), true, noLookup(target))
		span.End()
	}
	_, span := telemetry.StartWebhookSpan(httptest.NewRequest(http.MethodPost, "/webhooks/twilio/status?m=42", nil), time.Now(), false, noLookup("an unverified webhook"))
	span.End()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/twilio/status?m=42", nil)
	r.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	ctx, span := telemetry.StartWebhookSpan(r, time.Now(), true, noLookup("a request with a traceparent header"))
	span.End()
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", trace.SpanContextFromContext(ctx).TraceID().String())
}
