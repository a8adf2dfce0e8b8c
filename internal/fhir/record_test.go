package fhir_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// The EHR refuses a write with an OperationOutcome whose texts quote what
// was sent: the dead letter names the record and keeps the server's words,
// never the values.
func TestDeadLetterKeepsDiagnostics(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	ref := "diag-" + randHex(4)
	id := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, GivenName: "Ana", FamilyName: "Kowalczyk", PhoneE164: "+15005550006"})
	status, _, _ := fhirDo(t, "POST", b.base+"/$fault", map[string]any{"method": "POST", "path": "Patient", "status": 422, "times": 1,
		"body": map[string]any{"resourceType": "OperationOutcome", "issue": []any{map[string]any{"severity": "error", "code": "business-rule",
			"diagnostics": "Patient Kowalczyk already has an active record with phone +15005550006; merge the charts first",
			"expression":  []any{"Patient.telecom[0]"}}}}}, nil)
	require.Equal(t, 200, status)
	err := b.runPush(t, "patient", id)
	requireCancelled(t, err)
	msg := err.Error()
	require.Contains(t, msg, fmt.Sprintf("Patient for patient %d:", id), "names the record")
	require.Contains(t, msg, "HTTP 422 [error/business-rule at Patient.telecom[0]]")
	require.Contains(t, msg, "already has an active record with phone …; merge the charts first", "the server's diagnostics")
	require.NotContains(t, msg, "Kowalczyk")
	require.NotContains(t, msg, "5550006")
}
