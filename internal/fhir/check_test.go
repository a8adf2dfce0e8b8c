package fhir_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
)

func TestEHRCheckReportsAndStoresThePlan(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	r, err := fhir.CheckEndpoint(b.ctx, b.pool, nil, "medplum", "test")
	require.NoError(t, err)
	require.Equal(t, fhir.UpdatePatch, r.Plan.Update, "the peer declares patch")
	require.True(t, r.Transaction)
	require.False(t, r.Subscriptions)
	var patient fhir.ResourceReport
	for _, x := range r.Resources {
		if x.Type == "Patient" {
			patient = x
		}
	}
	require.True(t, patient.ConditionalCreate && patient.Patch && patient.LastUpdated)
	require.Contains(t, strings.Join(r.Consequences, "\n"), "JSON Patch")
	var plan string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT write_plan->>'update' FROM switchboard.ehr_endpoints WHERE id = $1`, b.endpoint.ID).Scan(&plan))
	require.Equal(t, "patch", plan, "stored on the endpoint row")

	// A server without patch, transactions or conditional create for Device.
	srv := newJSONServer(t, func(w http.ResponseWriter, r *http.Request) {
		res := func(typ string, cc bool) map[string]any {
			return map[string]any{"type": typ, "conditionalCreate": cc, "supportedProfile": []string{"http://example.org/p/" + typ},
				"interaction": []any{map[string]any{"code": "read"}, map[string]any{"code": "create"}, map[string]any{"code": "update"},
					map[string]any{"code": "search-type"}}, "searchParam": []any{map[string]any{"name": "_lastUpdated"}}}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
			"rest": []any{map[string]any{"mode": "server", "resource": []any{res("Patient", true), res("Observation", true), res("Device", false)}}}})
	})
	_, err = b.pool.Exec(b.ctx, `UPDATE switchboard.ehr_endpoints SET base_url = $2, push_types = '{Patient,Observation,Device}' WHERE id = $1`,
		b.endpoint.ID, srv)
	require.NoError(t, err)
	r, err = fhir.CheckEndpoint(b.ctx, b.pool, nil, "medplum", "test")
	require.NoError(t, err)
	require.Equal(t, fhir.UpdatePut, r.Plan.Update)
	all := strings.Join(r.Consequences, "\n")
	require.Contains(t, all, "Device has no conditional create")
	require.Contains(t, all, "no transaction")
	require.Contains(t, fmt.Sprint(r.Resources), "http://example.org/p/Patient")
}
