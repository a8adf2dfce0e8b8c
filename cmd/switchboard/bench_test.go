package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/bench"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

func runBenchCLI(t *testing.T, args ...string) (bench.Report, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"bench"}, args...), &out, &errOut)
	require.NoError(t, err, errOut.String())
	var r bench.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String())
	return r, errOut.String()
}

// The bench's smoke tests run tiny scenarios on a database of their own and
// check that the report is complete; they assert nothing about timings.
func TestBench(t *testing.T) {
	t.Parallel()

	t.Run("HelpExitsZero", func(t *testing.T) {
		t.Parallel()
		out, err := runCLI(t, "bench", "--help")
		require.ErrorIs(t, err, errHelp)
		require.Contains(t, out, "Usage: switchboard bench")
	})

	t.Run("UnknownScenarioIsAUsageError", func(t *testing.T) {
		t.Parallel()
		_, err := runCLI(t, "bench", "--database-url", "postgres://127.0.0.1:1/x", "--scenarios", "nope")
		var ue usageError
		require.ErrorAs(t, err, &ue)
	})

	t.Run("EnqueueReportsEveryCaseAgainstItsBaseline", func(t *testing.T) {
		t.Parallel()
		url := dbtest.NewDatabase(t)
		r, progress := runBenchCLI(t, "--database-url", url, "--json", "--scenarios", "enqueue",
			"--enqueue-clients", "2", "--enqueue-slice", "300ms", "--enqueue-rounds", "2", "--enqueue-ablations=false")
		require.Contains(t, progress, "bench: enqueue")
		cases := map[string]bench.Result{}
		for _, res := range r.Results {
			require.Equal(t, bench.ScenarioEnqueue, res.Scenario)
			require.Positive(t, res.Latency.N, res.Case)
			cases[res.Case] = res
		}
		require.True(t, cases["domain row only"].Baseline)
		for _, c := range []string{"+ switchboard.send_sms", "+ jobs.SendSMS (Go wrapper)", "+ send_sms as of 00014 (before)"} {
			require.Contains(t, cases, c)
			require.Positive(t, cases[c].LatencyRatio, c)
		}
		require.Len(t, r.Targets, 1)
	})

	t.Run("EndToEndSendsEveryMessageOnce", func(t *testing.T) {
		t.Parallel()
		url := dbtest.NewDatabase(t)
		r, _ := runBenchCLI(t, "--database-url", url, "--json", "--scenarios", "e2e",
			"--noop-jobs", "200", "--messages", "100", "--rate", "50", "--latency-duration", "1s",
			"--wakeup-cases=false", "--slow-workers", "5", "--slow-messages", "20", "--provider-latency", "20ms",
			"--workers", "10", "--pool", "10")
		var sent int
		for _, res := range r.Results {
			require.Equal(t, bench.ScenarioE2E, res.Scenario)
			if strings.HasPrefix(res.Case, "send_sms") {
				sent++
				require.Regexp(t, `(^|\s)0 sent twice at the provider`, res.Note, res.Case)
			}
		}
		require.Equal(t, 5, sent, "drain, latency, unshared drain and latency, slow provider")
		require.NotEmpty(t, r.Targets)
	})
}
