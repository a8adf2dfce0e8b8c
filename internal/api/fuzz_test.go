package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
)

// FuzzFHIRNotify posts fuzzed rest-hook notifications with the right
// secret to the real handler on a real database, in both forms (POST
// /webhooks/fhir/{endpoint} and PUT …/{type}/{id}). The answer is 202
// (pulls of the endpoint's pull types enqueued), 400 or 413; never a 5xx.
// A refused notification writes nothing, and an accepted one enqueues only
// fhir_pull jobs for the types the endpoint pulls. Seeds:
// testdata/fuzz/FuzzFHIRNotify.
func FuzzFHIRNotify(f *testing.F) {
	f.Add(false, "", "", `{"resourceType":"Observation","id":"9","status":"final"}`)
	f.Add(false, "", "", ``)
	f.Add(false, "", "", `{"resourceType":"Bundle","type":"subscription-notification","entry":[{"resource":{"resourceType":"SubscriptionStatus"}},{"resource":{"resourceType":"Patient"}}]}`)
	f.Add(false, "", "", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"../../x"}}]}`)
	f.Add(true, "Patient", "9", `{"resourceType":"Patient","id":"9"}`)
	f.Add(true, "not-a-type", "9", `{"resourceType":"Observation"}`)
	f.Add(true, "Encounter", "a/b", `{"resourceType":"Encounter"}`)
	f.Add(false, "", "", strings.Repeat(" ", 2*testMaxBody))

	b := setup(f, nil)
	ctx := context.Background()
	if _, err := db.New().EHREndpointInsert(ctx, b.pool, db.EHREndpointInsertParams{Name: "epic", BaseUrl: "http://ehr.invalid/fhir",
		AuthKind: "none", PushTypes: []string{}, PullTypes: []string{"Patient", "Observation"},
		WebhookSecretHash: fhir.HashSecret("s3cret"), PullInterval: pgtype.Interval{Microseconds: 60e6, Valid: true}}); err != nil {
		f.Fatal(err)
	}
	rc := dbtest.NewRowCounter(f, b.pool)

	f.Fuzz(func(t *testing.T, put bool, rt, id, body string) {
		method, target := http.MethodPost, "/webhooks/fhir/epic"
		if put {
			method, target = http.MethodPut, "/webhooks/fhir/epic/"+url.PathEscape(rt)+"/"+url.PathEscape(id)
		}
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Header.Set(api.FHIRSecretHeader, "s3cret")
		before := rc.Count(t)
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusAccepted:
			var other int
			if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.river_job
				WHERE kind <> 'fhir_pull' OR args->>'resource_type' NOT IN ('Patient', 'Observation')`).Scan(&other); err != nil {
				t.Fatal(err)
			}
			if other != 0 {
				t.Fatalf("an accepted notification enqueued %d jobs that are not pulls of the endpoint's types", other)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge,
			// routing: an empty or dot segment is redirected to the clean path or not found
			http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusNotFound, http.StatusMethodNotAllowed:
			if changed := rc.Changed(before, rc.Count(t)); changed != "" {
				t.Fatalf("refused with %d but rows changed: %s", rec.Code, changed)
			}
		default:
			t.Fatalf("answered %d: %s", rec.Code, rec.Body.String())
		}
	})
}
