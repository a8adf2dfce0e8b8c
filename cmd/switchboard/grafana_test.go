package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// exportedMetrics lists every metric name the program's source declares:
// prometheus.NewDesc's name and the Namespace/Subsystem/Name of every
// Counter/Gauge/Histogram/Summary options literal (a histogram also exports
// _bucket, _sum and _count). Read from the source, because a metric vector
// with no children yet does not appear on /metrics.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	str := func(e ast.Expr) string {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			return s
		}
		return ""
	}
	for _, dir := range []string{"internal", "cmd", "jobs"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewDesc" && len(n.Args) > 0 {
						if name := str(n.Args[0]); name != "" {
							out[name] = true
						}
					}
				case *ast.CompositeLit:
					sel, ok := n.Type.(*ast.SelectorExpr)
					if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
						return true
					}
					parts := map[string]string{}
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok {
								parts[k.Name] = str(kv.Value)
							}
						}
					}
					if parts["Name"] == "" {
						return true
					}
					var name []string
					for _, p := range []string{parts["Namespace"], parts["Subsystem"], parts["Name"]} {
						if p != "" {
							name = append(name, p)
						}
					}
					full := strings.Join(name, "_")
					out[full] = true
					if sel.Sel.Name == "HistogramOpts" || sel.Sel.Name == "SummaryOpts" {
						out[full+"_sum"], out[full+"_count"] = true, true
						if sel.Sel.Name == "HistogramOpts" {
							out[full+"_bucket"] = true
						}
					}
				}
				return true
			})
			return nil
		})
		require.NoError(t, err)
	}
	return out
}

// TestGrafanaDashboardQueriesExportedMetrics checks the provisioned
// dashboard: it uses the provisioned data source, shows what an operator
// needs (queue depth, oldest job, send rate and latency per destination,
// breaker state, dead letters), and every metric its queries name is one
// the program exports.
func TestGrafanaDashboardQueriesExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	require.True(t, exported["switchboard_webhooks_total"], "Namespace+Name options are read")
	require.True(t, exported["switchboard_queue_available_jobs"], "NewDesc names are read")

	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/provisioning/datasources/prometheus.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &ds))
	require.Len(t, ds.Datasources, 1)
	require.Equal(t, "prometheus", ds.Datasources[0].Type)
	require.Equal(t, "http://prometheus:9090", ds.Datasources[0].URL, "the compose file's prometheus service")

	b, err = os.ReadFile(filepath.Join(repoRoot, "deploy/grafana/dashboards/switchboard.json"))
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash), "the dashboard is valid JSON")
	require.NotEmpty(t, dash.UID)
	metricName := regexp.MustCompile(`\bswitchboard_[a-z0-9_]+\b`)
	shown := map[string]bool{}
	for _, p := range dash.Panels {
		require.Equal(t, ds.Datasources[0].UID, p.Datasource.UID, "panel %q uses the provisioned data source", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has a query", p.Title)
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			require.NotEmpty(t, names, "panel %q: %s names a switchboard metric", p.Title, tg.Expr)
			for _, n := range names {
				require.True(t, exported[n], "panel %q queries %s, which the program does not export", p.Title, n)
				shown[n] = true
			}
		}
	}
	for _, need := range []string{
		"switchboard_queue_available_jobs",                     // queue depth
		"switchboard_queue_oldest_available_seconds",           // oldest job
		"switchboard_destination_calls_total",                  // send rate per destination
		"switchboard_destination_call_duration_seconds_bucket", // latency per destination
		"switchboard_destination_breaker_state",                // breaker state
		"switchboard_dead_letters_open",                        // dead letters
	} {
		require.True(t, shown[need], "the dashboard shows %s", need)
	}
}
