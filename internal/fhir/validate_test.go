package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/fhir/r4spec"
	"github.com/switchboard-health/switchboard/jobs"
)

const syntheaBundle = "/work/shared/data/fhir/synthea-r4-transaction-bundle.json"

type txBundle struct {
	Type  string `json:"type"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

func loadSynthea(t *testing.T) txBundle {
	t.Helper()
	raw, err := os.ReadFile(syntheaBundle)
	require.NoError(t, err, "the Synthea bundle of shared/data")
	var b txBundle
	require.NoError(t, json.Unmarshal(raw, &b))
	require.NotEmpty(t, b.Entry)
	return b
}

// TestSyntheaResourcesAreValid: every resource of a real-world (Synthea)
// transaction passes the validator in the context of its transaction: the
// embedded schema, the required bindings and the reference rules accept
// what EHR-grade data looks like.
func TestSyntheaResourcesAreValid(t *testing.T) {
	t.Parallel()
	v, err := fhir.NewValidator("")
	require.NoError(t, err)
	b := loadSynthea(t)
	var urns []string
	for _, e := range b.Entry {
		urns = append(urns, e.FullURL)
	}
	for i, e := range b.Entry {
		require.NoError(t, v.Validate(e.Resource, fhir.ValidateOptions{FullURLs: urns}), "entry %d", i)
	}
	t.Logf("%d Synthea resources valid", len(b.Entry))

	t.Run("OutsideTheTransactionTheirUUIDReferencesDangle", func(t *testing.T) {
		var ve *fhir.ValidationError
		require.ErrorAs(t, v.Validate(b.Entry[len(b.Entry)-1].Resource, fhir.ValidateOptions{}), &ve)
		require.Contains(t, ve.Error(), "reference: urn:uuid")
	})
}

// writes counts the writes (anything but GET) among this test's requests
// through its proxy.
func (b *testBundle) writes() int {
	n := 0
	for _, r := range b.proxy.since(0) {
		if !strings.HasPrefix(r, "GET ") {
			n++
		}
	}
	return n
}

// TestInvalidResourcesNeverReachTheServer pushes hand-made invalid
// resources through push_fhir: each is refused at call time (22023 naming
// the element) or dead-lettered by the worker as permanent naming the
// resource and the rule — and no write reaches the server. A valid one with
// a conditional reference is resolved and sent, to show the path works.
func TestInvalidResourcesNeverReachTheServer(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	writes := b.writes

	// A patient on the server that conditional references can resolve to.
	known := "known-" + randHex(4)
	status, created, _ := fhirDo(t, "POST", b.base+"/Patient", map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": b.system, "value": known}}}, nil)
	require.Equal(t, 201, status)
	knownRef := "Patient?identifier=" + url.QueryEscape(b.system+"|"+known)

	imm := func(status string) string {
		return `{"resourceType":"Immunization","status":"` + status + `","vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"140"}]},
			"patient":{"reference":"Patient/` + created["id"].(string) + `"},"occurrenceDateTime":"2024-01-02"}`
	}
	cond := func(subject, clinical string) string {
		return `{"resourceType":"Condition","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"` + clinical + `"}]},
			"code":{"text":"x"},"subject":{"reference":"` + subject + `"}}`
	}
	cases := []struct {
		name, resource string
		atCall         bool   // refused by push_fhir (22023)
		want           string // the element and rule the refusal names
	}{
		{"ImmunizationStatusDone", imm("done"), true, "Immunization.status is not in its required value set"},
		{"DanglingUUIDReference", cond("urn:uuid:0b5b1c52-2f65-4e3e-9f0a-1d2a3b4c5d6e", "active"), true, "Condition.subject.reference is a urn:uuid reference"},
		{"NotAnR4Type", `{"resourceType":"Foo","status":"active"}`, true, "Foo is not a FHIR R4 resource type"},
		{"UnresolvedConditionalReference", cond("Patient?identifier="+url.QueryEscape(b.system+"|nobody-"+randHex(4)), "active"), false,
			"Condition.subject.reference: reference: conditional reference matches no resource"},
		{"ConditionalReferenceWithoutSearch", cond("Patient?", "active"), false, "Condition.subject.reference: reference"},
		{"CodeableConceptOutsideRequiredBinding", cond(knownRef, "sick"), false, "Condition.clinicalStatus: binding"},
		{"MissingRequiredPrimitive", `{"resourceType":"Immunization","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/1"},"occurrenceString":"x"}`, false,
			"Immunization.status: schema: required"},
		{"UnknownElement", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"colour":"red"}`, false, "Observation: schema"},
		{"CodingOutsideRequiredBinding", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"comparator":"about"}}`, false,
			"Observation.valueQuantity.comparator: binding"},
		{"VitalSignsProfileWithoutCategory", `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/heartrate"]},"status":"final",
			"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2024-01-02T03:04:05Z",
			"valueQuantity":{"value":60,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`, false, "Observation.category: profile"},
		{"UnknownProfile", `{"resourceType":"Observation","meta":{"profile":["http://example.org/whatever"]},"status":"final","code":{"text":"x"}}`, false,
			"Observation.meta.profile"},
	}
	refused, deadLettered := 0, 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := writes()
			var id int64
			err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
				var err error
				id, err = jobs.PushFHIR(b.ctx, tx, json.RawMessage(c.resource), &jobs.PushFHIROpts{EndpointName: "medplum"})
				return err
			})
			if c.atCall {
				var pgErr *pgconn.PgError
				require.ErrorAs(t, err, &pgErr)
				require.Equal(t, "22023", pgErr.Code)
				require.Contains(t, pgErr.Message, c.want)
				refused++
			} else {
				require.NoError(t, err, "push_fhir cannot decide this one")
				err = b.runPush(t, "outbound", id)
				ce := requireCancelled(t, err)
				require.Equal(t, fhir.ClassPermanent, fhir.Classify(ce.Unwrap(), 1))
				require.Contains(t, err.Error(), c.want)
				deadLettered++
			}
			require.Equal(t, before, writes(), "no write reached the server")
		})
	}
	t.Logf("%d invalid resources: %d refused by push_fhir, %d dead-lettered by the worker, %d writes reached the server",
		len(cases), refused, deadLettered, writes())

	t.Run("ResolvableConditionalReferenceIsResolvedAndSent", func(t *testing.T) {
		var id int64
		b.tx(t, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.PushFHIR(b.ctx, tx, json.RawMessage(cond(knownRef, "active")), &jobs.PushFHIROpts{EndpointName: "medplum"})
			return err
		})
		before := writes()
		require.NoError(t, b.runPush(t, "outbound", id))
		require.Equal(t, before+1, writes())
		got := b.byIdentifier(t, "Condition", fmt.Sprintf("outbound-%d", id))
		require.Len(t, got, 1)
		require.Equal(t, "Patient/"+created["id"].(string), got[0]["subject"].(map[string]any)["reference"])
	})
}

// TestStatusCodesMatchTheEmbeddedSpec keeps push_fhir's table of R4
// resource types and status codes equal to the definitions the worker
// validates against.
func TestStatusCodesMatchTheEmbeddedSpec(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	spec := r4spec.MustLoad()
	rows, err := pool.Query(context.Background(), "SELECT resource_type, status_codes FROM switchboard.fhir_resource_types ORDER BY 1")
	require.NoError(t, err)
	got := map[string][]string{}
	for rows.Next() {
		var rt string
		var codes []string
		require.NoError(t, rows.Scan(&rt, &codes))
		got[rt] = codes
	}
	require.NoError(t, rows.Err())
	want := map[string][]string{}
	for _, rt := range spec.Resources {
		var codes []string
		for _, c := range spec.ValueSets[spec.Bindings[rt+".status"]] {
			_, code, _ := strings.Cut(c, "|")
			codes = append(codes, code)
		}
		want[rt] = codes
	}
	require.Equal(t, want, got)
}
