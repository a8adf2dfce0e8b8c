package fhir_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// setPlan stores the endpoint's write plan (as `ehr check` would).
func (b *testBundle) setPlan(t *testing.T, update string) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, `UPDATE switchboard.ehr_endpoints SET write_plan = jsonb_build_object('update', $2::text), updated_at = now()
		WHERE id = $1`, b.endpoint.ID, update)
	require.NoError(t, err)
}

// ehrEdit changes a resource on the peer directly, as the EHR's own users
// would: read, change, PUT (no If-Match).
func (b *testBundle) ehrEdit(t *testing.T, rt, id string, change func(r map[string]any)) {
	t.Helper()
	status, r, _ := fhirDo(t, "GET", b.peerBase+"/"+rt+"/"+id, nil, nil)
	require.Equal(t, 200, status)
	change(r)
	status, _, _ = fhirDo(t, "PUT", b.peerBase+"/"+rt+"/"+id, r, nil)
	require.Equal(t, 200, status)
}

func (b *testBundle) read(t *testing.T, rt, id string) map[string]any {
	t.Helper()
	status, r, _ := fhirDo(t, "GET", b.peerBase+"/"+rt+"/"+id, nil, nil)
	require.Equal(t, 200, status)
	return r
}

// ehrAdditions is what the EHR adds to a patient Switchboard pushed: an MRN,
// an address, a nickname, an e-mail, a general practitioner and a second
// given name in the official name.
func ehrAdditions(r map[string]any) {
	r["identifier"] = append(r["identifier"].([]any), map[string]any{"system": "http://hospital.example/mrn", "value": "MRN-0042"})
	r["address"] = []any{map[string]any{"line": []any{"1 Main St"}, "city": "Springfield"}}
	r["name"] = append(r["name"].([]any), map[string]any{"use": "nickname", "given": []any{"Annie"}})
	r["telecom"] = append(r["telecom"].([]any), map[string]any{"system": "email", "value": "ana@hospital.example"})
	r["generalPractitioner"] = []any{map[string]any{"display": "Dr. Jane Doe"}}
	official := r["name"].([]any)[0].(map[string]any)
	official["given"] = []any{"Ana", "Maria"}
}

// requireEHRAdditionsKept checks everything ehrAdditions added survived.
func requireEHRAdditionsKept(t *testing.T, r map[string]any, system string) {
	t.Helper()
	var systems []string
	for _, i := range r["identifier"].([]any) {
		systems = append(systems, i.(map[string]any)["system"].(string))
	}
	require.ElementsMatch(t, []string{system, "http://hospital.example/mrn"}, systems, "both identifiers, ours once")
	require.Len(t, r["address"], 1, "the EHR's address")
	require.Len(t, r["generalPractitioner"], 1, "the EHR's GP")
	names := r["name"].([]any)
	require.Len(t, names, 2, "official and nickname")
	require.Equal(t, []any{"Ana", "Maria"}, names[0].(map[string]any)["given"], "the second given name")
	var emails int
	for _, c := range r["telecom"].([]any) {
		if c.(map[string]any)["system"] == "email" {
			emails++
		}
	}
	require.Equal(t, 1, emails, "the EHR's e-mail")
}

func phones(r map[string]any) []string {
	var out []string
	for _, c := range r["telecom"].([]any) {
		if m := c.(map[string]any); m["system"] == "phone" {
			out = append(out, m["value"].(string))
		}
	}
	return out
}

func TestUpdateKeepsWhatTheEHRAdded(t *testing.T) {
	t.Parallel()
	for _, plan := range []string{fhir.UpdatePut, fhir.UpdatePatch} {
		t.Run(plan, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fhir.Config{})
			b.setPlan(t, plan)
			ref := "keep-" + randHex(4)
			id := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, GivenName: "Ana", FamilyName: "Smith", Gender: "female", PhoneE164: "+15005550006"})
			require.NoError(t, b.runPush(t, "patient", id))
			rid := b.link(t, "patient", id).ResourceID
			b.ehrEdit(t, "Patient", rid, ehrAdditions)

			b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, PhoneE164: "+15005550007"})
			n := b.proxy.requests()
			require.NoError(t, b.runPush(t, "patient", id))
			method := map[string]string{fhir.UpdatePut: "PUT", fhir.UpdatePatch: "PATCH"}[plan]
			require.Equal(t, []string{"GET Patient/" + rid, method + " Patient/" + rid}, b.proxy.since(n), "one read, one write")

			r := b.read(t, "Patient", rid)
			require.Equal(t, []string{"+15005550007"}, phones(r), "our phone changed")
			requireEHRAdditionsKept(t, r, b.system)
			require.Equal(t, r["meta"].(map[string]any)["versionId"], *b.link(t, "patient", id).VersionID)

			// Our name changes: the official name is ours, the nickname stays.
			b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Smith-Jones"})
			require.NoError(t, b.runPush(t, "patient", id))
			r = b.read(t, "Patient", rid)
			require.Equal(t, "Smith-Jones", r["name"].([]any)[0].(map[string]any)["family"])
			require.Len(t, r["name"], 2)
			require.Len(t, r["address"], 1)
		})
	}
}

func TestObservationUpdateKeepsEHRNotes(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	ref := "notes-" + randHex(4)
	b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Notes"})
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	record := func(v float64) int64 {
		var id int64
		b.tx(t, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "heart_rate", Value: v,
				Unit: "/min", EffectiveStart: at, Source: "google_health", SourceID: "hr-1"})
			return err
		})
		return id
	}
	oid := record(61)
	require.NoError(t, b.runPush(t, "observation", oid))
	rid := b.link(t, "observation", oid).ResourceID
	b.ehrEdit(t, "Observation", rid, func(r map[string]any) {
		r["note"] = []any{map[string]any{"text": "taken after climbing stairs"}}
		r["bodySite"] = map[string]any{"text": "left wrist"}
	})
	require.Equal(t, oid, record(64))
	require.NoError(t, b.runPush(t, "observation", oid))
	r := b.read(t, "Observation", rid)
	require.Equal(t, "64", fmt.Sprint(r["valueQuantity"].(map[string]any)["value"]))
	require.Len(t, r["note"], 1, "the EHR's note")
	require.NotNil(t, r["bodySite"], "the EHR's body site")
}

func TestUpdateRaceReMerges(t *testing.T) {
	t.Parallel()
	for _, plan := range []string{fhir.UpdatePut, fhir.UpdatePatch} {
		t.Run(plan, func(t *testing.T) {
			t.Parallel()
			b := setup(t, fhir.Config{})
			b.setPlan(t, plan)
			ref := "race-" + randHex(4)
			id := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, GivenName: "Ana", FamilyName: "Smith", PhoneE164: "+15005550006"})
			require.NoError(t, b.runPush(t, "patient", id))
			rid := b.link(t, "patient", id).ResourceID

			// Between Switchboard's read and its write, the EHR adds an
			// address: the write gets 412 and must re-read and re-merge.
			var once sync.Once
			b.proxy.setHook(func(r *http.Request) {
				if (r.Method == "PUT" || r.Method == "PATCH") && strings.HasSuffix(r.URL.Path, "/Patient/"+rid) {
					once.Do(func() {
						b.ehrEdit(t, "Patient", rid, func(r map[string]any) {
							r["address"] = []any{map[string]any{"city": "Springfield"}}
						})
					})
				}
			})
			b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, PhoneE164: "+15005550007"})
			n := b.proxy.requests()
			require.NoError(t, b.runPush(t, "patient", id))
			require.Len(t, b.proxy.since(n), 4, "read, write (412), read, write")
			r := b.read(t, "Patient", rid)
			require.Len(t, r["address"], 1, "the address added during our update survives")
			require.Equal(t, []string{"+15005550007"}, phones(r))
		})
	}
}

func TestUpdateRaceEveryTimeIsANamedDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{MaxConflictRetries: 2})
	ref := "busy-" + randHex(4)
	id := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Busy", PhoneE164: "+15005550006"})
	require.NoError(t, b.runPush(t, "patient", id))
	rid := b.link(t, "patient", id).ResourceID
	edits := 0
	b.proxy.setHook(func(r *http.Request) {
		if (r.Method == "PUT" || r.Method == "PATCH") && strings.HasSuffix(r.URL.Path, "/Patient/"+rid) {
			edits++
			b.ehrEdit(t, "Patient", rid, func(r map[string]any) { r["birthDate"] = fmt.Sprintf("19%02d-01-01", 50+edits) })
		}
	})
	b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, PhoneE164: "+15005550007"})
	n := b.proxy.requests()
	err := b.runPush(t, "patient", id)
	ce := requireCancelled(t, err)
	require.Equal(t, fhir.ClassPermanent, fhir.Classify(ce.Unwrap(), 1))
	require.Contains(t, err.Error(), fmt.Sprintf("Patient for patient %d (Patient/%s)", id, rid), "the dead letter names the record")
	require.Contains(t, err.Error(), "changed on the server by someone else at every one of 3 read-merge-write rounds")
	require.NotContains(t, err.Error(), "+1500555")
	require.Len(t, b.proxy.since(n), 6, "1 + FHIR_MAX_CONFLICT_RETRIES rounds of read and write, no more")
}
