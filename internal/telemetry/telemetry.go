// Package telemetry carries one OpenTelemetry trace from the app's
// transaction through the job, the vendor call and the vendor's webhook back
// to the event the app reads.
//
// It is off by default. Setup turns it on from the standard variables:
// OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); the
// exporter reads every other OTEL_EXPORTER_OTLP_* variable itself, and
// OTEL_SDK_DISABLED=true wins over all of them.
//
// How the trace travels:
//
//   - The app sets `switchboard.traceparent` in its transaction
//     (`SELECT set_config('switchboard.traceparent', $1, true)`, done for it
//     by the Go wrappers in jobs/); a trigger copies it into the metadata of
//     every job that transaction inserts.
//   - The worker makes the job's traceparent the parent of its work span
//     (RiverMiddleware), so the job, its SQL (otelpgx) and its vendor calls
//     (Transport) share the app's trace id; River's own middleware
//     (otelriver) adds the work span and injects the context into jobs the
//     api inserts.
//   - Vendor webhooks carry ?m=<message id> on their URL; once a webhook's
//     signature is verified, the api takes the trace of that message's send
//     job as the parent of the webhook's server span (StartWebhookSpan), and
//     the inbox job it inserts carries it on to the event. An unverified
//     webhook's ?m= is never looked up.
//
// No PHI reaches a span: Switchboard's own spans carry ids, kinds and
// states; URL attributes lose their query string (Twilio's list filters by
// phone number, OAuth callbacks carry codes), and SQL spans carry statement
// text, never arguments.
package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// MetadataKey is where a job's W3C traceparent lives in River's metadata
// (the key otelriver uses too).
const MetadataKey = "traceparent"

var enabled atomic.Bool

// Enabled reports whether traces are recorded (Setup or Install ran).
func Enabled() bool { return enabled.Load() }

// Configured reports whether the OTEL_* environment asks for traces.
func Configured() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))) {
	case "otlp":
		return true
	case "":
	default: // "none", or a value Setup refuses
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs an OTLP/HTTP exporter when the environment asks for one
// and returns the function that flushes and stops it; otherwise it installs
// only the W3C propagator and returns a no-op.
func Setup(ctx context.Context, service string) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if v := strings.ToLower(os.Getenv("OTEL_TRACES_EXPORTER")); v != "" && v != "otlp" && v != "none" {
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER must be otlp or none, not %q", v)
	}
	if !Configured() {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("error creating the OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		res = resource.Default()
	}
	tp := NewProvider(res, sdktrace.NewBatchSpanProcessor(exp))
	Install(tp)
	return tp.Shutdown, nil
}

// NewProvider returns an SDK tracer provider whose processors only ever
// see redacted spans (see redactedSpan).
func NewProvider(res *resource.Resource, processors ...sdktrace.SpanProcessor) *sdktrace.TracerProvider {
	var opts []sdktrace.TracerProviderOption
	if res != nil {
		opts = append(opts, sdktrace.WithResource(res))
	}
	for _, p := range processors {
		opts = append(opts, sdktrace.WithSpanProcessor(redacting{p}))
	}
	return sdktrace.NewTracerProvider(opts...)
}

// Install makes tp the global provider and turns the instrumentation on.
func Install(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	enabled.Store(true)
}

// Uninstall turns the instrumentation off again and restores the no-op
// provider (tests).
func Uninstall() {
	enabled.Store(false)
	otel.SetTracerProvider(noop.NewTracerProvider())
}

// redacting hands its processor (an exporter's batcher, a test's
// recorder) each ended span with its URL attributes stripped of their query
// string: the query is where vendors put phone numbers (Twilio's message
// list filters by To) and OAuth puts codes. Instrumentation sets these
// attributes after a span starts, so they are redacted at its end.
type redacting struct{ sdktrace.SpanProcessor }

func (r redacting) OnEnd(s sdktrace.ReadOnlySpan) { r.SpanProcessor.OnEnd(redactedSpan{s}) }

type redactedSpan struct{ sdktrace.ReadOnlySpan }

var urlKeys = []attribute.Key{"url.full", "http.url", "http.target"}

func (s redactedSpan) Attributes() []attribute.KeyValue {
	in := s.ReadOnlySpan.Attributes()
	out := make([]attribute.KeyValue, len(in))
	for i, kv := range in {
		switch {
		case kv.Key == "url.query":
			kv = attribute.String("url.query", "redacted")
		case slices.Contains(urlKeys, kv.Key):
			kv = attribute.String(string(kv.Key), StripQuery(kv.Value.AsString()))
		}
		out[i] = kv
	}
	return out
}

// StripQuery drops the query and fragment of a URL (or request target).
func StripQuery(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}

// Transport wraps a vendor client's transport so each call is a client span
// and carries the traceparent header.
func Transport(rt http.RoundTripper) http.RoundTripper {
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(otel.GetTracerProvider()), otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return "vendor " + r.Method + " " + r.URL.Host
	}))
}

// Handler wraps the api's handler so each request is a server span, except
// those own reports: their handler starts its span itself (StartWebhookSpan).
func Handler(h http.Handler, own func(*http.Request) bool) http.Handler {
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(otel.GetTracerProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
	}
	if own != nil {
		opts = append(opts, otelhttp.WithFilter(func(r *http.Request) bool { return !own(r) }))
	}
	return otelhttp.NewHandler(h, "api", opts...)
}

// PgxTracer is the pgx tracer for SQL spans: statement text only, never
// arguments (otelpgx records arguments only when asked to).
func PgxTracer() pgx.QueryTracer { return otelpgx.NewTracer(otelpgx.WithTrimSQLInSpanName()) }

// RiverMiddleware is the River middleware of the worker and of the api's
// insert-only client when tracing is on (none otherwise): the job's
// traceparent becomes the work span's parent (parentFromMetadata), then
// otelriver records the work span and injects trace context on insert.
func RiverMiddleware() []rivertype.Middleware {
	if !Enabled() {
		return nil
	}
	return []rivertype.Middleware{
		&parentFromMetadata{},
		otelriver.NewMiddleware(&otelriver.MiddlewareConfig{EnableTracePropagation: true, EnableWorkSpanJobKindSuffix: true}),
	}
}

// parentFromMetadata puts the job's traceparent into the work context as a
// remote parent. otelriver only links to it; a parent keeps the app's trace
// id on everything the job does.
type parentFromMetadata struct{ river.MiddlewareDefaults }

func (*parentFromMetadata) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	if sc := SpanContextFromMetadata(job.Metadata); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return doInner(ctx)
}

// SpanContextFromMetadata reads the traceparent in a job's metadata.
func SpanContextFromMetadata(metadata []byte) trace.SpanContext {
	if len(metadata) == 0 {
		return trace.SpanContext{}
	}
	var meta map[string]any
	if err := json.Unmarshal(metadata, &meta); err != nil {
		return trace.SpanContext{}
	}
	tp, _ := meta[MetadataKey].(string)
	return ParseTraceparent(tp)
}

// ParseTraceparent parses a W3C traceparent header value; an invalid one
// gives the zero SpanContext.
func ParseTraceparent(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// Traceparent formats the span context in ctx as a W3C traceparent, or ""
// when ctx holds none.
func Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// PropagateTx hands the trace in ctx to the SQL functions called later in
// tx (the trigger copies it into each job tx inserts). It does nothing when
// ctx holds no span.
func PropagateTx(ctx context.Context, tx pgx.Tx) error {
	tp := Traceparent(ctx)
	if tp == "" {
		return nil
	}
	_, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('switchboard.traceparent', $1, true)", tp)
	return err
}

// StartWebhookSpan starts the server span of a vendor webhook that arrived at
// start and has been checked: verified says whether its signature holds.
// The span's parent is the request's traceparent header when it carries a
// valid one; otherwise, for a verified webhook whose URL names a message
// (?m=<id>), the trace of that message's send job, which lookup returns
// ("" when unknown, e.g. after River cleaned the job). lookup reads the
// database: it is never called for an unverified webhook, so an
// unauthenticated caller cannot make the api query at will. End the span
// with EndWebhookSpan.
func StartWebhookSpan(r *http.Request, start time.Time, verified bool, lookup func(ctx context.Context, messageID int64) (string, error)) (context.Context, trace.Span) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if verified && !trace.SpanContextFromContext(ctx).IsValid() {
		if id, ok := messageID(r.URL); ok {
			if tp, err := lookup(ctx, id); err == nil {
				if sc := ParseTraceparent(tp); sc.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
				}
			}
		}
	}
	return otel.GetTracerProvider().Tracer(tracerName).Start(ctx, r.Method+" "+r.URL.Path,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
}

// EndWebhookSpan records the status answered and ends a span from
// StartWebhookSpan; a 5xx marks it failed, as otelhttp does.
func EndWebhookSpan(span trace.Span, status int) {
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// tracerName names Switchboard's own spans' instrumentation scope.
const tracerName = "github.com/switchboard-health/switchboard/internal/telemetry"

func messageID(u *url.URL) (int64, bool) {
	m := u.Query().Get("m")
	if m == "" {
		return 0, false
	}
	id, err := strconv.ParseInt(m, 10, 64)
	return id, err == nil && id > 0
}
