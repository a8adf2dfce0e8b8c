package jobs_test

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// The package documentation catalogues every kind in switchboard.job_kinds
// (a "# kind" section each) and no other.
func TestCatalogueListsEveryKind(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	rows, err := pool.Query(context.Background(), "SELECT kind FROM switchboard.job_kinds ORDER BY kind")
	require.NoError(t, err)
	var kinds []string
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		kinds = append(kinds, k)
	}
	require.NoError(t, rows.Err())
	require.Len(t, kinds, 15)

	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^// # ([a-z_]+)$`).FindAllStringSubmatch(string(doc), -1) {
		if m[1] != "Enqueue" {
			documented = append(documented, m[1])
		}
	}
	require.ElementsMatch(t, kinds, documented)
	for _, f := range []string{"fhir.go", "wearables.go", "sms.go", "maintenance.go"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NotRegexp(t, `(?i)to be merged|catalogue text for`, string(b), "%s: the catalogue lives in doc.go", f)
	}
}
