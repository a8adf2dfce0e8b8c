package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/telemetry"
	"github.com/switchboard-health/switchboard/jobs"
)

// sqlLog records the SQL text of every query a pool runs.
type sqlLog struct {
	mu  sync.Mutex
	sql []string
}

func (s *sqlLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	s.sql = append(s.sql, d.SQL)
	s.mu.Unlock()
	return ctx
}

func (*sqlLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// reset forgets what was recorded so far.
func (s *sqlLog) reset() {
	s.mu.Lock()
	s.sql = nil
	s.mu.Unlock()
}

func (s *sqlLog) matching(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, q := range s.sql {
		if strings.Contains(q, substr) {
			out = append(out, q)
		}
	}
	return out
}

// TestOnlyAVerifiedWebhookLooksUpItsMessagesTrace: with tracing on, the api
// reads the trace of the message a webhook's ?m= names only once the
// webhook's signature is verified; an unsigned or badly signed one is
// refused without touching the database, whatever its ?m= says. Not
// parallel: it installs the global tracer provider.
func TestOnlyAVerifiedWebhookLooksUpItsMessagesTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := telemetry.NewProvider(nil, rec)
	telemetry.Install(tp)
	t.Cleanup(telemetry.Uninstall)

	pc, err := pgxpool.ParseConfig(dbtest.NewDatabase(t))
	require.NoError(t, err)
	var stmts sqlLog
	pc.ConnConfig.Tracer = &stmts
	pool, err := pgxpool.NewWithConfig(t.Context(), pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	// A message sent inside the app's trace.
	appCtx, appSpan := tp.Tracer("app").Start(t.Context(), "app")
	var messageID int64
	require.NoError(t, pgx.BeginFunc(appCtx, pool, func(tx pgx.Tx) error {
		messageID, err = jobs.SendSMS(appCtx, tx, jobs.SendSMSParams{IdempotencyKey: "trace-verified", To: "+15005550009", Body: "hi"})
		return err
	}))
	appSpan.End()

	srv, err := api.New(api.Config{
		PublicBaseURL:       testBaseURL,
		WebhookMaxBodyBytes: testMaxBody,
		TwilioAuthToken:     testToken,
	}, pool, newClient(t, pool, api.RiverSchema), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	h := srv.Handler()
	target := statusPath + "?m=" + strconv.FormatInt(messageID, 10)
	form := statusForm("delivered")

	t.Run("UnsignedIsRefusedWithoutAQuery", func(t *testing.T) {
		stmts.reset()
		res := post(h, target, form.Encode(), "")
		require.Equal(t, http.StatusForbidden, res.Code)
		require.Empty(t, stmts.sql, "an unsigned webhook made the api query the database")
	})

	t.Run("BadlySignedIsRefusedWithoutAQuery", func(t *testing.T) {
		stmts.reset()
		res := post(h, target, form.Encode(), sign("not-the-token", testBaseURL+target, form))
		require.Equal(t, http.StatusForbidden, res.Code)
		require.Empty(t, stmts.sql, "a badly signed webhook made the api query the database")
	})

	t.Run("VerifiedJoinsTheMessagesTrace", func(t *testing.T) {
		stmts.reset()
		res := postSigned(h, target, form)
		require.Equal(t, http.StatusOK, res.Code, res.Body.String())
		require.Len(t, stmts.matching("traceparent"), 1, "the verified webhook looks up its message's trace once")
		var found bool
		for _, sp := range rec.Ended() {
			if sp.Name() == "POST "+statusPath && sp.SpanContext().TraceID() == appSpan.SpanContext().TraceID() {
				found = true
			}
		}
		require.True(t, found, "the verified webhook's server span is in the message's trace")
	})
}
