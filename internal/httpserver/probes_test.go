package httpserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/httpserver"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(body)
}

func TestProbes(t *testing.T) {
	t.Parallel()

	t.Run("HealthzAnswersOK", func(t *testing.T) {
		t.Parallel()
		code, body := get(t, httpserver.Probes(nil), "/healthz")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
	})

	t.Run("ReadyzOKWithLiveDatabase", func(t *testing.T) {
		t.Parallel()
		pool, _ := dbtest.NewPool(t)
		code, body := get(t, httpserver.Probes(pool), "/readyz")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
	})

	t.Run("ReadyzUnavailableWithClosedPool", func(t *testing.T) {
		t.Parallel()
		pool, _ := dbtest.NewPool(t)
		pool.Close()
		code, body := get(t, httpserver.Probes(pool), "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: database unavailable\n", body)
	})

	t.Run("ReadyzUnavailableWhenDatabaseIsDropped", func(t *testing.T) {
		t.Parallel()
		dbURL := dbtest.NewDatabase(t)
		pool, err := database.Open(t.Context(), database.Config{URL: dbURL, MaxConns: 2})
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		probes := httpserver.Probes(pool)

		code, _ := get(t, probes, "/readyz")
		require.Equal(t, http.StatusOK, code)

		dropDatabase(t, dbURL)

		code, body := get(t, probes, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: database unavailable\n", body)
		require.NotContains(t, body, "postgres")
	})

	t.Run("ReadyzUnavailableWhenAnExtraCheckFails", func(t *testing.T) {
		t.Parallel()
		pool, _ := dbtest.NewPool(t)
		pass := func(context.Context) error { return nil }
		fail := func(context.Context) error { return errors.New("river client not started") }

		code, _ := get(t, httpserver.Probes(pool, pass), "/readyz")
		require.Equal(t, http.StatusOK, code)

		code, body := get(t, httpserver.Probes(pool, pass, fail), "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: check 2 failed: river client not started\n", body)
	})

	t.Run("ReadyzUnavailableWithoutPool", func(t *testing.T) {
		t.Parallel()
		code, _ := get(t, httpserver.Probes(nil), "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code)
	})

	t.Run("MetricsAreNotOnTheProbeListener", func(t *testing.T) {
		t.Parallel()
		code, _ := get(t, httpserver.Probes(nil), "/metrics")
		require.Equal(t, http.StatusNotFound, code)
	})

	t.Run("OtherMethodsAreRefused", func(t *testing.T) {
		t.Parallel()
		rec := httptest.NewRecorder()
		httpserver.Probes(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	})
}

// dropDatabase drops the database dbURL names, closing its connections.
func dropDatabase(t *testing.T, dbURL string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	conn, err := pgx.Connect(t.Context(), dbtest.AdminURL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	require.NoError(t, err)
}

// TestMetrics: /metrics is its own handler (its own listener, loopback by
// default) and, with a token, needs it as a bearer token.
func TestMetrics(t *testing.T) {
	t.Parallel()
	code, body := get(t, httpserver.Metrics(""), "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "go_goroutines")

	h := httpserver.Metrics("s3cret")
	for _, auth := range []string{"", "Bearer wrong", "Basic czNjcmV0", "Bearer s3cret2", "bearer s3cret"} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusUnauthorized, rec.Code, auth)
		require.NotContains(t, rec.Body.String(), "go_goroutines")
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "go_goroutines")
	require.Equal(t, "[redacted]", httpserver.Token("s3cret").String())
}
