package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestHelpExitsZeroForEveryCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"migrate", "--help"}, {"worker", "--help"}, {"api", "--help"},
		{"dev", "--help"}, {"dlq", "--help"}, {"destination", "--help"},
	} {
		out, err := runCLI(t, args...)
		require.ErrorIs(t, err, errHelp, args)
		require.Contains(t, out, "Usage: switchboard", args)
	}
}

func TestMistakesAreUsageErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, args := range [][]string{
		{}, {"nope"}, {"migrate"}, {"migrate", "sideways"}, {"dlq"}, {"dlq", "show"},
		{"dlq", "retry"}, {"dlq", "purge", "1"}, {"dlq", "retry", "x"}, {"dlq", "retry", "1", "--kind", "k"},
		{"destination", "pause"}, {"dlq", "list"}, {"migrate", "up"},
	} {
		_, err := runCLI(t, args...)
		var ue usageError
		require.ErrorAs(t, err, &ue, args)
		require.NotEmpty(t, ue.Error())
		require.NotContains(t, ue.Error(), "\n", "one clear line")
	}
}

func TestOperatorCommandsAgainstADatabase(t *testing.T) {
	url := dbtest.NewDatabase(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("SWITCHBOARD_ACTOR", "ops@test")
	t.Setenv("LOG_FORMAT", "json")

	out, err := runCLI(t, "migrate", "status")
	require.NoError(t, err)
	require.Contains(t, out, "00011_sql_api.sql")
	require.NotRegexp(t, `(?m)^\d+\s+pending\s`, out)

	out, err = runCLI(t, "destination", "pause", "twilio")
	require.NoError(t, err)
	require.Contains(t, out, "paused")
	out, err = runCLI(t, "destination", "list")
	require.NoError(t, err)
	require.Regexp(t, `twilio\s+closed\s+true`, out)
	_, err = runCLI(t, "destination", "pause", "Not A Name")
	var ue usageError
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Error(), "destination")

	out, err = runCLI(t, "dlq", "list")
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(out, "\n"), "header only")
	_, err = runCLI(t, "dlq", "retry", "--kind", "sms_send", "--since", "yesterday")
	require.ErrorAs(t, err, &ue)
	out, err = runCLI(t, "dlq", "retry", "--kind", "sms_send", "--class", "unavailable", "--since", "90m")
	require.NoError(t, err)
	require.Contains(t, out, "requeued 0")
	_, err = runCLI(t, "dlq", "show", "12345")
	require.Error(t, err)
	require.False(t, errors.As(err, &ue), "an unknown id is not a usage mistake")
}

func TestEveryCommandsConfigurationLoadsWithDefaults(t *testing.T) {
	t.Setenv("PUBLIC_BASE_URL", "https://switchboard.example.com")
	for name, target := range map[string]any{
		"worker": &workerConfig{}, "api": &apiConfig{}, "dev": &devConfig{}, "base": &base{},
	} {
		require.NoError(t, load(context.Background(), target), name)
	}
	var cfg workerConfig
	require.NoError(t, load(context.Background(), &cfg))
	require.Equal(t, "info", cfg.Base.Log.Level)
	require.Equal(t, 5*time.Millisecond, cfg.Worker.FetchCooldown)
	require.Equal(t, "https://api.twilio.com", cfg.Twilio.APIBaseURL)
}
