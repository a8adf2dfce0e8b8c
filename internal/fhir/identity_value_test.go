package fhir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIdentifierValuesAreOneToOne: every app reference gets its own
// identifier value and the pull maps the value back to it; "a|b" and
// "a%7Cb" were both "a%7Cb" (one patient's conditional write matching the
// other's record), and a pulled "a%7Cb" was read as "a|b".
func TestIdentifierValuesAreOneToOne(t *testing.T) {
	t.Parallel()
	refs := []string{"a", "a|b", "a%7Cb", "a%257Cb", "a%25b", "a%b", "a%7cb", "|%|", "%7C|", "a%2"}
	seen := map[string]string{}
	for _, ref := range refs {
		v := identifierValueOf(ref)
		require.NotContains(t, v, "|", "ref %q", ref)
		prev, dup := seen[v]
		require.False(t, dup, "refs %q and %q share identifier value %q", prev, ref, v)
		seen[v] = ref
		require.Equal(t, ref, externalRefOf(v), "value %q of ref %q", v, ref)
	}
	require.Equal(t, "a", identifierValueOf("a"), "a plain reference is its own value")
}
