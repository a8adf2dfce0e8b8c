package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/envvars"
	"github.com/switchboard-health/switchboard/internal/httpserver"
	"github.com/switchboard-health/switchboard/internal/worker"
)

func TestConfig(t *testing.T) {
	t.Parallel()

	process := func(t *testing.T, env map[string]string) (api.Config, error) {
		t.Helper()
		var cfg api.Config
		err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &cfg, Lookuper: envconfig.MapLookuper(env)})
		return cfg, err
	}

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		cfg, err := process(t, map[string]string{"PUBLIC_BASE_URL": "https://sb.example.com"})
		require.NoError(t, err)
		require.Equal(t, ":8080", cfg.Addr)
		require.Equal(t, int64(65536), cfg.WebhookMaxBodyBytes)
		require.Equal(t, httpserver.DefaultReadHeaderTimeout, cfg.HTTP.ReadHeaderTimeout)
		require.Equal(t, httpserver.DefaultShutdownTimeout, cfg.HTTP.ShutdownTimeout)
		require.Empty(t, cfg.OperatorUsername)
	})

	t.Run("BadTrustedProxyIsRefused", func(t *testing.T) {
		t.Parallel()
		var cfg api.Config
		err := envvars.LoadFrom(t.Context(), envconfig.MapLookuper(map[string]string{"PUBLIC_BASE_URL": "https://sb.example.com",
			"API_TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"}), &cfg)
		require.ErrorContains(t, err, "API_TRUSTED_PROXIES: ")
		require.ErrorContains(t, err, "not a CIDR")
	})

	t.Run("PublicBaseURLIsRequired", func(t *testing.T) {
		t.Parallel()
		_, err := process(t, map[string]string{})
		require.ErrorContains(t, err, "PUBLIC_BASE_URL")
	})

	t.Run("ReadsEveryVariable", func(t *testing.T) {
		t.Parallel()
		cfg, err := process(t, map[string]string{
			"API_ADDR":               "127.0.0.1:9000",
			"PUBLIC_BASE_URL":        "https://sb.example.com",
			"OPERATOR_USERNAME":      "ops",
			"OPERATOR_PASSWORD_HASH": "$2a$04$hash",
			"WEBHOOK_MAX_BODY_BYTES": "2048",
			"HTTP_WRITE_TIMEOUT":     "15s",
			"API_TRUSTED_PROXIES":    "10.0.0.0/8,192.168.1.1",
		})
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:9000", cfg.Addr)
		require.Equal(t, "[10.0.0.0/8 192.168.1.1/32]", fmt.Sprint(cfg.TrustedProxies))
		require.Equal(t, "ops", cfg.OperatorUsername)
		require.Equal(t, api.Secret("$2a$04$hash"), cfg.OperatorPasswordHash)
		require.Equal(t, int64(2048), cfg.WebhookMaxBodyBytes)
		require.Equal(t, "15s", cfg.HTTP.WriteTimeout.String())
	})

	t.Run("SecretsAreRedacted", func(t *testing.T) {
		t.Parallel()
		cfg := api.Config{
			PublicBaseURL:        "https://sb.example.com",
			OperatorUsername:     "ops",
			OperatorPasswordHash: "$2a$04$secrethash",
			TwilioAuthToken:      "secrettoken",
		}
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "config", cfg, "hash", cfg.OperatorPasswordHash)
		slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "config", cfg)
		for _, out := range []string{
			fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg),
			fmt.Sprint(cfg.OperatorPasswordHash), fmt.Sprintf("%#v", cfg.OperatorPasswordHash),
			logs.String(),
		} {
			require.NotContains(t, out, "secrethash")
			require.NotContains(t, out, "secrettoken")
			require.Contains(t, out, "[redacted]")
		}
		require.Contains(t, fmt.Sprint(cfg), "https://sb.example.com")
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	client := newClient(t, pool, api.RiverSchema)
	logger := slog.New(slog.DiscardHandler)
	hash := passwordHash(t, "pw")

	tests := []struct {
		name    string
		cfg     api.Config
		wantErr string
	}{
		{"Valid", api.Config{PublicBaseURL: "https://sb.example.com/", OperatorUsername: "ops", OperatorPasswordHash: hash}, ""},
		{"NoOperator", api.Config{PublicBaseURL: "http://localhost:8080"}, ""},
		{"NoBaseURL", api.Config{}, "PUBLIC_BASE_URL is not set"},
		{"RelativeBaseURL", api.Config{PublicBaseURL: "/switchboard"}, "PUBLIC_BASE_URL must be"},
		{"BaseURLWithQuery", api.Config{PublicBaseURL: "https://sb.example.com/?a=b"}, "PUBLIC_BASE_URL must be"},
		{"OtherScheme", api.Config{PublicBaseURL: "ftp://sb.example.com"}, "PUBLIC_BASE_URL must be"},
		// deploy/.env.example: a username, no hash yet → operator routes answer 503.
		{"UsernameWithoutHash", api.Config{PublicBaseURL: "https://sb.example.com", OperatorUsername: "ops"}, ""},
		{"HashWithoutUsername", api.Config{PublicBaseURL: "https://sb.example.com", OperatorPasswordHash: hash}, "without OPERATOR_USERNAME"},
		{"NotBcrypt", api.Config{PublicBaseURL: "https://sb.example.com", OperatorUsername: "ops", OperatorPasswordHash: "plaintext"}, "not a bcrypt hash"},
		{"NegativeBodyLimit", api.Config{PublicBaseURL: "https://sb.example.com", WebhookMaxBodyBytes: -1}, "WEBHOOK_MAX_BODY_BYTES"},
	}
	for _, tt := range tests {
		_, err := api.New(tt.cfg, pool, client, logger)
		if tt.wantErr == "" {
			require.NoError(t, err, tt.name)
			continue
		}
		require.ErrorContains(t, err, tt.wantErr, tt.name)
		require.NotContains(t, err.Error(), "plaintext", tt.name)
	}

	t.Run("RefusesAClientOnAnotherSchema", func(t *testing.T) {
		t.Parallel()
		_, err := api.New(api.Config{PublicBaseURL: "https://sb.example.com"}, pool, newClient(t, pool, ""), logger)
		require.ErrorContains(t, err, "schema")
	})
}

// TestMetricsListenOnLoopbackByDefault: /metrics is not on the public
// listener, and its own listener defaults to loopback, for the api and the
// worker alike.
func TestMetricsListenOnLoopbackByDefault(t *testing.T) {
	t.Parallel()
	var cfg api.Config
	require.NoError(t, envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &cfg, Lookuper: envconfig.MapLookuper(map[string]string{"PUBLIC_BASE_URL": "https://sb.example.com"})}))
	require.Equal(t, "127.0.0.1:9090", cfg.MetricsAddr)
	var wcfg worker.Config
	require.NoError(t, envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &wcfg, Lookuper: envconfig.MapLookuper(map[string]string{})}))
	require.Equal(t, "127.0.0.1:9091", wcfg.MetricsAddr)

	pool, _ := dbtest.NewPool(t)
	srv, err := api.New(cfg, pool, newClient(t, pool, api.RiverSchema), nil)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code, "not on the public listener")
	require.NotContains(t, rec.Body.String(), "go_goroutines")
}
