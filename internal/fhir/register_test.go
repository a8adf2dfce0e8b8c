package fhir_test

import (
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
)

// Register takes the pushes' and pulls' unavailable limits from what the
// worker read of switchboard.job_kinds at start-up; without them it fails,
// rather than wiring the workers with limits the operator never set.
func TestRegisterNeedsTheUnavailableLimits(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	_, err := fhir.Register(t.Context(), river.NewWorkers(), fhir.Deps{Pool: pool})
	require.ErrorContains(t, err, "UnavailableLimits is required")
}
