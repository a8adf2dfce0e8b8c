package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/fhir"
)

func TestFHIRNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, err := db.New().EHREndpointInsert(ctx, b.pool, db.EHREndpointInsertParams{Name: "epic", BaseUrl: "http://ehr.invalid/fhir",
		AuthKind: "none", PushTypes: []string{}, PullTypes: []string{"Patient", "Observation"},
		WebhookSecretHash: fhir.HashSecret("s3cret"), PullInterval: pgtype.Interval{Microseconds: 60e6, Valid: true}})
	require.NoError(t, err)

	send := func(method, target, secret, body string) int {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if secret != "" {
			req.Header.Set(api.FHIRSecretHeader, secret)
		}
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		return rec.Code
	}
	pulls := func() map[string]int {
		rows, err := b.pool.Query(ctx, `SELECT args->>'resource_type', count(*) FROM switchboard.river_job WHERE kind = 'fhir_pull' GROUP BY 1`)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var k string
			var n int
			require.NoError(t, rows.Scan(&k, &n))
			out[k] = n
		}
		return out
	}

	// The webhook contract (DESIGN.md): bad or missing secret 403, malformed
	// body 400, nothing stored either way.
	t.Run("BadSecretIs403AndStoresNothing", func(t *testing.T) {
		require.Equal(t, http.StatusForbidden, send("POST", "/webhooks/fhir/epic", "wrong", ""))
		require.Equal(t, http.StatusForbidden, send("POST", "/webhooks/fhir/epic", "", `{"resourceType":"Observation"}`))
		require.Equal(t, http.StatusForbidden, send("POST", "/webhooks/fhir/nobody", "s3cret", ""))
		require.Equal(t, http.StatusForbidden, send("PUT", "/webhooks/fhir/epic/Observation/1", "wrong", `{"resourceType":"Observation"}`))
		require.Equal(t, http.StatusForbidden, send("POST", "/webhooks/fhir/epic", "wrong", `not json`), "the secret is checked first")
		require.Empty(t, pulls())
	})

	t.Run("MalformedBodyIs400AndStoresNothing", func(t *testing.T) {
		for _, body := range []string{`not json`, `{"resourceType":`, `[]`, `"Observation"`, `{"id":"1"}`, `{"resourceType":"not a type"}`} {
			require.Equal(t, http.StatusBadRequest, send("POST", "/webhooks/fhir/epic", "s3cret", body), body)
			require.Equal(t, http.StatusBadRequest, send("PUT", "/webhooks/fhir/epic/Observation/1", "s3cret", body), body)
		}
		require.Equal(t, http.StatusBadRequest, send("PUT", "/webhooks/fhir/epic/not-a-type/1", "s3cret", `{"resourceType":"Observation"}`))
		require.Empty(t, pulls())
	})

	t.Run("PingEnqueuesEveryPullTypeOnce", func(t *testing.T) {
		require.Equal(t, http.StatusAccepted, send("POST", "/webhooks/fhir/epic", "s3cret", ""))
		require.Equal(t, http.StatusAccepted, send("POST", "/webhooks/fhir/epic", "s3cret", ""))
		require.Equal(t, map[string]int{"Patient": 1, "Observation": 1}, pulls(), "a waiting pull is not duplicated")
	})

	t.Run("FullBodyAndPutFormNameTheType", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, `UPDATE switchboard.river_job SET state = 'completed', finalized_at = now() WHERE kind = 'fhir_pull'`)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, send("POST", "/webhooks/fhir/epic", "s3cret", `{"resourceType":"Observation","id":"9","status":"final"}`))
		require.Equal(t, map[string]int{"Patient": 1, "Observation": 2}, pulls())
		req := httptest.NewRequest("PUT", "/webhooks/fhir/epic/Patient/9", strings.NewReader(`{"resourceType":"Patient","id":"9"}`))
		req.Header.Set("Authorization", "Bearer s3cret")
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusAccepted, rec.Code)
		require.Equal(t, map[string]int{"Patient": 2, "Observation": 2}, pulls())
	})
}

// TestFHIRWrongSecretsAreThrottledPerSource: a source that keeps sending
// wrong secrets gets 429 with Retry-After before any secret check (the
// right secret too, so the answer is no oracle), while other sources go on.
func TestFHIRWrongSecretsAreThrottledPerSource(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.FHIRAuth = api.FHIRAuthConfig{FailuresPerIP: 3, Refill: time.Hour} })
	_, err := db.New().EHREndpointInsert(t.Context(), b.pool, db.EHREndpointInsertParams{Name: "epic", BaseUrl: "http://ehr.invalid/fhir",
		AuthKind: "none", PushTypes: []string{}, PullTypes: []string{"Patient"},
		WebhookSecretHash: fhir.HashSecret("s3cret"), PullInterval: pgtype.Interval{Microseconds: 60e6, Valid: true}})
	require.NoError(t, err)
	send := func(src, endpoint, secret string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/fhir/"+endpoint, nil)
		req.RemoteAddr = src
		req.Header.Set(api.FHIRSecretHeader, secret)
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		return rec
	}
	require.Equal(t, http.StatusForbidden, send("198.51.100.7:1", "epic", "guess1").Code)
	require.Equal(t, http.StatusForbidden, send("198.51.100.7:2", "epic", "guess2").Code)
	require.Equal(t, http.StatusForbidden, send("198.51.100.7:3", "nobody", "s3cret").Code, "an unknown endpoint counts too")
	rec := send("198.51.100.7:4", "epic", "s3cret")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	require.Equal(t, http.StatusAccepted, send("198.51.100.8:1", "epic", "s3cret").Code, "another source is not throttled")
}
