package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The repository stands alone: README and docs link only files inside it
// that exist, README documents every variable the binary reads, and
// docs/design.md carries the contract (every job kind, the settings and
// names a user needs).
func TestDocsStandAlone(t *testing.T) {
	t.Parallel()
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	require.NoError(t, err)
	for _, d := range docs {
		rel, _ := filepath.Rel(repoRoot, d)
		files = append(files, rel)
	}
	require.Contains(t, files, filepath.Join("docs", "design.md"))
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			abs, err := filepath.Abs(filepath.Join(repoRoot, filepath.Dir(f), target))
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(abs, root+string(filepath.Separator)), "%s links %s, outside the repository", f, target)
			_, err = os.Stat(abs)
			require.NoError(t, err, "%s links %s, which does not exist", f, target)
		}
	}

	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	vars := readVariables()
	for v := range vars {
		if strings.HasPrefix(v, "DEST_") {
			continue // DEST_<NAME>_* is documented as a pattern
		}
		require.Contains(t, string(readme), v, "README documents %s", v)
	}

	design, err := os.ReadFile(filepath.Join(repoRoot, "docs", "design.md"))
	require.NoError(t, err)
	for _, want := range []string{
		"sms_send", "sms_reconcile", "webhook_process", "destination_probe", "maintenance", "fhir_push", "fhir_pull",
		"fhir_pull_schedule", "wearable_sync", "wearable_backfill", "wearable_notification", "wearable_summarize",
		"wearable_poll", "wearable_revoke", "apple_health_ingest",
		"WEARABLES_BACKFILL_SPACING", "WEARABLES_NOTIFY_DELAY", "WEARABLES_SUMMARIZE_DELAY",
		"time_zone", "switchboard_goose_db_version", "wakeup_cooldown_ms", "app_enqueue",
		"hold_reason", "dead_letter_id", "permanent", "retries_exhausted", "unavailable", "unknown_kind", "undecodable_args",
	} {
		require.Contains(t, string(design), want, "docs/design.md names %s", want)
	}
}
