package httpserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadyTimeout bounds one /readyz answer: the database query and every extra
// check share it.
const ReadyTimeout = 2 * time.Second

// Probes returns a handler serving the probes every Switchboard server
// mounts:
//
//   - GET /healthz: 200 "ok" while the process serves HTTP.
//   - GET /readyz: 200 "ok" when the database answers SELECT 1 and every
//     extra check returns nil within ReadyTimeout; otherwise 503 with a short
//     reason. Database errors are reported as "database unavailable" only (the
//     driver's text names hosts and users); an extra check's error text is
//     shown as is, so it must hold no secret.
//
// Mount it at each path, or use it as a whole handler. /metrics is not
// here: Metrics serves it on a listener of its own.
func Probes(pool *pgxpool.Pool, extra ...func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		if reason := ready(ctx, pool, extra); reason != "" {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+reason)
			return
		}
		writeText(w, http.StatusOK, "ok")
	})
	return mux
}

// ready returns why the process is not ready, or "" when it is.
func ready(ctx context.Context, pool *pgxpool.Pool, extra []func(context.Context) error) string {
	if pool == nil {
		return "no database configured"
	}
	// A literal probe query: there is nothing for sqlc to generate here.
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		return "database unavailable"
	}
	for i, check := range extra {
		if err := check(ctx); err != nil {
			return fmt.Sprintf("check %d failed: %v", i+1, err)
		}
	}
	return ""
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}
