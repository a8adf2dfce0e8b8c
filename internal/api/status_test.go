package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/api"
)

// statusBody mirrors GET /status's documented JSON: decoding with
// DisallowUnknownFields catches a renamed or undocumented field.
type statusBody struct {
	GeneratedAt  time.Time `json:"generated_at"`
	Destinations []struct {
		Destination         string     `json:"destination"`
		LastSuccessAt       *time.Time `json:"last_success_at"`
		LastFailureAt       *time.Time `json:"last_failure_at"`
		LastFailureClass    *string    `json:"last_failure_class"`
		ConsecutiveFailures int        `json:"consecutive_failures"`
		BreakerState        string     `json:"breaker_state"`
		Paused              bool       `json:"paused"`
		PausedBy            *string    `json:"paused_by"`
		PausedAt            *time.Time `json:"paused_at"`
		LastProbeAt         *time.Time `json:"last_probe_at"`
		CallsTotal          int64      `json:"calls_total"`
		UpdatedAt           time.Time  `json:"updated_at"`
	} `json:"destinations"`
	Queues []struct {
		Queue                  string  `json:"queue"`
		Available              int64   `json:"available"`
		Scheduled              int64   `json:"scheduled"`
		Retryable              int64   `json:"retryable"`
		Running                int64   `json:"running"`
		OldestAvailableSeconds float64 `json:"oldest_available_seconds"`
	} `json:"queues"`
	DeadLettersOpen map[string]int64 `json:"dead_letters_open"`
}

// getStatus requests GET /status, with Basic credentials unless user is "".
func getStatus(h http.Handler, user, password string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeStatus(t *testing.T, rec *httptest.ResponseRecorder) statusBody {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body statusBody
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body))
	return body
}

func TestStatus(t *testing.T) {
	t.Parallel()

	t.Run("NeedsOperatorCredentials", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)

		rec := getStatus(b.handler, "", "")
		require.Equal(t, http.StatusUnauthorized, rec.Code)
		require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Basic")

		require.Equal(t, http.StatusUnauthorized, getStatus(b.handler, testUser, "wrong").Code)
		require.Equal(t, http.StatusUnauthorized, getStatus(b.handler, "someone", testPassword).Code)
		require.Equal(t, http.StatusOK, getStatus(b.handler, testUser, testPassword).Code)
	})

	t.Run("ClosedWithoutConfiguredOperator", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(cfg *api.Config) {
			cfg.OperatorUsername = ""
			cfg.OperatorPasswordHash = ""
		})
		require.Equal(t, http.StatusServiceUnavailable, getStatus(b.handler, testUser, testPassword).Code)
	})

	t.Run("OnlyGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		req := httptest.NewRequest(http.MethodPost, "/status", nil)
		req.SetBasicAuth(testUser, testPassword)
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	})

	t.Run("ReflectsRows", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		_, err := b.pool.Exec(t.Context(), `
			INSERT INTO switchboard.river_queue (name, updated_at) VALUES ('q_idle', now());
			INSERT INTO switchboard.river_job (kind, args, queue, state, scheduled_at, max_attempts, attempt, finalized_at) VALUES
			    ('sms_send', '{}', 'q_busy', 'available', now() - interval '1 hour', 10, 0, NULL),
			    ('sms_send', '{}', 'q_busy', 'available', now(), 10, 0, NULL),
			    ('sms_send', '{}', 'q_busy', 'scheduled', now() + interval '1 hour', 10, 0, NULL),
			    ('sms_send', '{}', 'q_busy', 'retryable', now() + interval '1 minute', 10, 1, NULL),
			    ('sms_send', '{}', 'q_busy', 'running', now(), 10, 1, NULL),
			    ('sms_send', '{}', 'q_busy', 'running', now(), 10, 1, NULL),
			    ('sms_send', '{}', 'q_busy', 'completed', now() - interval '1 day', 10, 1, now()),
			    ('sms_send', '{}', 'q_busy', 'discarded', now() - interval '1 day', 10, 10, now()),
			    ('sms_send', '{}', 'q_done', 'completed', now() - interval '1 day', 10, 1, now());
			INSERT INTO switchboard.destination_health
			    (destination, last_success_at, last_failure_at, last_failure_class, consecutive_failures, breaker_state, calls_total)
			VALUES ('twilio', '2026-01-02T09:00:00Z', '2026-01-02T10:00:00Z', 'retryable', 3, 'open', 17);
			SELECT switchboard.destination_set_paused('twilio', true, 'alice');
			INSERT INTO switchboard.dead_letters (job_id, kind, queue, args, attempts, max_attempts, class, job_state, state) VALUES
			    (101, 'sms_send', 'sms', '{}', 10, 10, 'retries_exhausted', 'discarded', 'open'),
			    (102, 'sms_send', 'sms', '{}', 1, 10, 'permanent', 'cancelled', 'open'),
			    (103, 'sms_send', 'sms', '{}', 10, 10, 'retries_exhausted', 'discarded', 'purged'),
			    (104, 'webhook_process', 'inbound', '{}', 1, 10, 'permanent', 'cancelled', 'purged')`)
		require.NoError(t, err)
		before := time.Now()

		body := decodeStatus(t, getStatus(b.handler, testUser, testPassword))
		require.False(t, body.GeneratedAt.Before(before.Truncate(time.Second)))
		require.Equal(t, time.UTC, body.GeneratedAt.Location())

		require.Len(t, body.Destinations, 1)
		d := body.Destinations[0]
		require.Equal(t, "twilio", d.Destination)
		require.Equal(t, time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC), d.LastSuccessAt.UTC())
		require.Equal(t, time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC), d.LastFailureAt.UTC())
		require.Equal(t, "retryable", *d.LastFailureClass)
		require.Equal(t, 3, d.ConsecutiveFailures)
		require.Equal(t, "open", d.BreakerState)
		require.True(t, d.Paused)
		require.Equal(t, "alice", *d.PausedBy)
		require.NotNil(t, d.PausedAt)
		require.Nil(t, d.LastProbeAt)
		require.Equal(t, int64(17), d.CallsTotal)
		require.False(t, d.UpdatedAt.IsZero())

		queues := map[string]int{}
		for i, q := range body.Queues {
			queues[q.Queue] = i
		}
		require.Contains(t, queues, "q_idle", "a queue River knows is listed without jobs")
		require.Contains(t, queues, "sms", "a queue of job_kinds is listed without jobs")
		require.NotContains(t, queues, "q_done", "finalized jobs are not counted")
		idle := body.Queues[queues["q_idle"]]
		require.Zero(t, idle.Available+idle.Scheduled+idle.Retryable+idle.Running)
		require.Zero(t, idle.OldestAvailableSeconds)
		busy := body.Queues[queues["q_busy"]]
		require.Equal(t, int64(2), busy.Available)
		require.Equal(t, int64(1), busy.Scheduled)
		require.Equal(t, int64(1), busy.Retryable)
		require.Equal(t, int64(2), busy.Running)
		require.GreaterOrEqual(t, busy.OldestAvailableSeconds, 3600.0)
		require.Less(t, busy.OldestAvailableSeconds, 7200.0)

		require.Equal(t, int64(2), body.DeadLettersOpen["sms_send"])
		v, ok := body.DeadLettersOpen["webhook_process"]
		require.True(t, ok, "a known kind without open dead letters is listed")
		require.Zero(t, v)
	})

	t.Run("EmptyListsAreArrays", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		rec := getStatus(b.handler, testUser, testPassword)
		require.Equal(t, http.StatusOK, rec.Code)
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
		require.JSONEq(t, `[]`, string(raw["destinations"]))
		require.Len(t, raw, 4)
	})

	t.Run("DatabaseDownIs503", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.pool.Close()

		rec := getStatus(b.handler, testUser, testPassword)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, "status unavailable: database error\n", rec.Body.String())
	})
}
