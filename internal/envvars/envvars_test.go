package envvars_test

import (
	"context"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/envvars"
)

type inner struct {
	Cooldown time.Duration `env:"WORKER_FETCH_COOLDOWN, default=5ms"`
	Conns    int32         `env:"WORKER_DB_MAX_CONNS, default=20"`
}

type config struct {
	Worker  inner
	BaseURL string  `env:"PUBLIC_BASE_URL, required"`
	Rate    float64 `env:"DEV_SANDBOX_FAILURE_RATE, default=0.1"`
	Name    string  `env:"SMS_PROVIDERS, default=twilio"`
}

func TestEveryBadVariableIsReportedAtOnceByName(t *testing.T) {
	var c config
	err := envvars.LoadFrom(context.Background(), envconfig.MapLookuper(map[string]string{
		"WORKER_FETCH_COOLDOWN":    "soon",
		"WORKER_DB_MAX_CONNS":      "many",
		"DEV_SANDBOX_FAILURE_RATE": "0.2",
	}), &c)
	var e *envvars.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, []string{"WORKER_FETCH_COOLDOWN", "WORKER_DB_MAX_CONNS", "PUBLIC_BASE_URL"},
		[]string{e.Problems[0].Var, e.Problems[1].Var, e.Problems[2].Var})
	require.Len(t, e.Problems, 3)
	require.Contains(t, e.Problems[0].Msg, `"soon"`)
	require.Equal(t, "is required and not set", e.Problems[2].Msg)
	require.NotContains(t, err.Error(), "Worker:", "no Go field paths")
	require.NotContains(t, err.Error(), "Cooldown")
	require.NotContains(t, err.Error(), "BaseURL")
}

func TestGoodVariablesLoad(t *testing.T) {
	var c config
	require.NoError(t, envvars.LoadFrom(context.Background(), envconfig.MapLookuper(map[string]string{
		"PUBLIC_BASE_URL": "https://x.example", "WORKER_DB_MAX_CONNS": "7",
	}), &c))
	require.Equal(t, "https://x.example", c.BaseURL)
	require.Equal(t, int32(7), c.Worker.Conns)
	require.Equal(t, 5*time.Millisecond, c.Worker.Cooldown)
	require.Equal(t, "twilio", c.Name)
}
