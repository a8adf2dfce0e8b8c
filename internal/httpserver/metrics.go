package httpserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Token is a bearer token that never prints: String, GoString, LogValue and
// MarshalText return "[redacted]" ("" when it is empty).
type Token string

func (t Token) mask() string {
	if t == "" {
		return ""
	}
	return "[redacted]"
}

// String implements fmt.Stringer.
func (t Token) String() string { return t.mask() }

// GoString implements fmt.GoStringer.
func (t Token) GoString() string { return fmt.Sprintf("%q", t.mask()) }

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.mask()) }

// MarshalText implements encoding.TextMarshaler.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.mask()), nil }

// Metrics serves GET /metrics from the default Prometheus registry, on its
// own listener (API_METRICS_ADDR, WORKER_METRICS_ADDR; loopback by
// default), never on the public one. With a token (METRICS_TOKEN), a scrape
// must send "Authorization: Bearer <token>" (compared in constant time) or
// gets 401.
func Metrics(token Token) http.Handler {
	want := sha256.Sum256([]byte(token))
	prom := promhttp.Handler()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
				writeText(w, http.StatusUnauthorized, "unauthorized")
				return
			}
		}
		prom.ServeHTTP(w, r)
	}))
	return mux
}
