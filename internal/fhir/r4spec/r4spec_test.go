package r4spec_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir/r4spec"
)

func TestEmbeddedSpecLoads(t *testing.T) {
	s, err := r4spec.Load()
	require.NoError(t, err)
	require.True(t, s.IsResource("Immunization"))
	require.False(t, s.IsResource("SubscriptionStatus"), "R4B, not R4")
	url := s.Bindings["Immunization.status"]
	require.Equal(t, "http://hl7.org/fhir/ValueSet/immunization-status", url)
	require.True(t, s.InValueSet(url, "", "completed"))
	require.False(t, s.InValueSet(url, "", "done"))
	require.GreaterOrEqual(t, len(s.Bindings), 300)
	start := time.Now()
	_, err = r4spec.Schema()
	require.NoError(t, err)
	t.Logf("schema compiled in %s", time.Since(start))
}
