package fhir_test

import (
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
)

// Register takes the pushes' and pulls' unavailable limits from
// switchboard.job_kinds; when it cannot read them it fails, rather than
// wiring the workers with limits the operator never set.
func TestRegisterNeedsTheJobKinds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	_, err := pool.Exec(t.Context(), `DROP TABLE switchboard.job_kinds CASCADE`)
	require.NoError(t, err)
	_, err = fhir.Register(t.Context(), river.NewWorkers(), fhir.Deps{Pool: pool})
	require.ErrorContains(t, err, "error reading job kinds")
}
