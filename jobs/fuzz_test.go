package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// sqlCall is one public SQL API function called with fuzzed arguments:
// its SQL, the arguments built from the fuzz input, and the field names a
// refusal may name (the function's parameter names).
type sqlCall struct {
	name   string
	sql    string
	args   []any
	fields []string
}

// opt maps the empty string to NULL for an optional argument.
func opt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// jsonArg passes s as jsonb when it is JSON, else as a JSON string, so the
// function (not the caller's cast) judges it.
func jsonArg(s string) (string, any) {
	if json.Valid([]byte(s)) {
		return "$%d::jsonb", s
	}
	return "to_jsonb($%d::text)", s
}

func fuzzCall(fn uint8, a, b, c, d, e string, n int64, v float64) sqlCall {
	switch fn % 9 {
	case 0:
		return sqlCall{"send_sms", "SELECT switchboard.send_sms($1, $2, $3, $4, NULL, NULL, $5)::text",
			[]any{a, b, c, opt(d), opt(e)}, []string{"idempotency_key", "to_e164", "body", "patient_ref", "time_zone"}}
	case 1:
		return sqlCall{"cancel_sms", "SELECT switchboard.cancel_sms($1)::text", []any{n}, []string{"message_id"}}
	case 2:
		return sqlCall{"upsert_patient", "SELECT switchboard.upsert_patient($1, $2, $3, $4, DATE '1970-01-01', $5)::text",
			[]any{a, opt(b), opt(c), opt(d), opt(e)}, []string{"external_ref", "given_name", "family_name", "gender", "phone_e164"}}
	case 3:
		// n picks the UTC offset: whole minutes, or not; within ±14 h, or not.
		return sqlCall{"record_observation", "SELECT switchboard.record_observation($1, $2, $3::float8::numeric, $4, now() - interval '1 hour', NULL, $5, $6, NULL, $7)::text",
			[]any{a, b, v, c, opt(d), opt(e), int32(n % 100_000)},
			[]string{"patient_external_ref", "kind", "value", "unit", "source", "source_id", "utc_offset_seconds"}}
	case 4:
		expr, res := jsonArg(a)
		fields := []string{"resource", "endpoint_name", "idempotency_key"}
		// push_fhir names an element inside resource by its FHIR path
		// (Immunization.status), as the worker's validation does.
		var r struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal([]byte(a), &r) == nil && r.ResourceType != "" {
			fields = append(fields, r.ResourceType+".")
		}
		return sqlCall{"push_fhir", "SELECT switchboard.push_fhir(" + fmt.Sprintf(expr, 1) + ", $2, $3)::text",
			[]any{res, opt(b), opt(c)}, fields}
	case 5:
		return sqlCall{"wearables_connect_link", "SELECT switchboard.wearables_connect_link($1, $2, $3::bigint * interval '1 second')",
			[]any{a, b, n % 10_000_000}, []string{"patient_external_ref", "provider", "ttl"}}
	case 6:
		return sqlCall{"wearables_upload_token", "SELECT switchboard.wearables_upload_token($1)", []any{a}, []string{"patient_external_ref"}}
	case 7:
		return sqlCall{"wearables_disconnect", "SELECT switchboard.wearables_disconnect($1, $2)::text", []any{n, a}, []string{"connection_id", "actor"}}
	default:
		expr, args := jsonArg(b)
		return sqlCall{"enqueue", "SELECT switchboard.enqueue($1, " + fmt.Sprintf(expr, 2) + ")::text",
			[]any{a, args}, []string{"kind", "args", "scheduled_at"}}
	}
}

// FuzzSQLAPI calls the public SQL API functions (send_sms, cancel_sms,
// upsert_patient, record_observation, push_fhir, wearables_connect_link,
// wearables_upload_token, wearables_disconnect, enqueue) as
// switchboard_app with fuzzed arguments against a real database. Every call
// succeeds or is refused with a documented SQLSTATE whose message names a
// field (for push_fhir, possibly an element of resource by its FHIR path):
// 22023 (bad input), 23505 (an idempotency key or source_id reused with
// other content), or 22021 when the text itself is not valid UTF-8 or holds
// NUL (PostgreSQL refuses it before the function runs). A refused call
// writes nothing: the row counts of every switchboard table are the same
// after it. Seeds: testdata/fuzz/FuzzSQLAPI.
func FuzzSQLAPI(f *testing.F) {
	f.Add(uint8(0), "fz-1", "+15005550006", "Your appointment is tomorrow.", "fuzz-patient", "America/New_York", int64(0), 0.0)
	f.Add(uint8(0), "fz-2", "+15005550006", "   ", "", "", int64(0), 0.0)
	f.Add(uint8(0), strings.Repeat("k", 3000), "+15005550006", "hi", "", "", int64(0), 0.0)
	f.Add(uint8(0), "fz-3", "+15005550006", "hi", "", "Not/AZone", int64(0), 0.0)
	f.Add(uint8(1), "", "", "", "", "", int64(1), 0.0)
	f.Add(uint8(1), "", "", "", "", "", int64(-1), 0.0)
	f.Add(uint8(2), "fuzz-patient-2", "Ana", "Smith", "female", "+15005550009", int64(0), 0.0)
	f.Add(uint8(2), "fuzz-patient-3", " ", "", "nonbinary", "0049", int64(0), 0.0)
	f.Add(uint8(3), "fuzz-patient", "heart_rate", "/min", "app", "", int64(0), 72.0)
	f.Add(uint8(3), "fuzz-patient", "weight", "[lb_av]", "google_health", "sample-1", int64(0), 154.0)
	f.Add(uint8(3), "fuzz-patient", "spo2", "%", "ehr:medplum", "Observation/1", int64(0), 1e300)
	f.Add(uint8(3), "fuzz-patient", "steps", "/d", "google_health", "day-1", int64(-25200), 8000.0)
	f.Add(uint8(3), "fuzz-patient", "steps", "/d", "google_health", "day-2", int64(50401), 8000.0)
	f.Add(uint8(4), `{"resourceType":"Communication","status":"completed"}`, "", "fz-push-1", "", "", int64(0), 0.0)
	f.Add(uint8(4), `{"resourceType":"Bundle"}`, "nope", "", "", "", int64(0), 0.0)
	f.Add(uint8(5), "fuzz-patient", "google_health", "", "", "", int64(1800), 0.0)
	f.Add(uint8(5), "fuzz-patient", "fitbit", "", "", "", int64(-5), 0.0)
	f.Add(uint8(6), "fuzz-patient", "", "", "", "", int64(0), 0.0)
	f.Add(uint8(7), "ops@example.org", "", "", "", "", int64(1), 0.0)
	f.Add(uint8(8), "sms_send", `{"message_id":1}`, "", "", "", int64(0), 0.0)
	f.Add(uint8(8), "no_such_kind", `[]`, "", "", "", int64(0), 0.0)

	pool, _ := dbtest.NewPool(f)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "SELECT switchboard.upsert_patient('fuzz-patient', 'Fuzz', 'Patient', 'other', DATE '1980-01-01', '+15005550006')"); err != nil {
		f.Fatal(err)
	}
	rc := dbtest.NewRowCounter(f, pool)

	f.Fuzz(func(t *testing.T, fn uint8, a, b, c, d, e string, n int64, v float64) {
		call := fuzzCall(fn, a, b, c, d, e, n, v)
		before := rc.Count(t)
		var out *string
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE switchboard_app"); err != nil {
				return err
			}
			return tx.QueryRow(ctx, call.sql, call.args...).Scan(&out)
		})
		if err == nil {
			if out == nil {
				t.Fatalf("%s returned NULL instead of a result or an error", call.name)
			}
			return
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			t.Fatalf("%s: not a database refusal: %v", call.name, err)
		}
		switch pgErr.Code {
		case "22023", "23505":
			if !slices.ContainsFunc(call.fields, func(f string) bool { return strings.Contains(pgErr.Message, f) }) {
				t.Fatalf("%s: %s refusal names no field (%v): %q", call.name, pgErr.Code, call.fields, pgErr.Message)
			}
		case "22021":
			if !badText(a, b, c, d, e) {
				t.Fatalf("%s: 22021 for valid UTF-8 text: %q", call.name, pgErr.Message)
			}
		default:
			t.Fatalf("%s: undocumented SQLSTATE %s: %s", call.name, pgErr.Code, pgErr.Message)
		}
		if changed := rc.Changed(before, rc.Count(t)); changed != "" {
			t.Fatalf("%s: refused (%s) but rows changed: %s", call.name, pgErr.Code, changed)
		}
	})
}

// badText reports whether any argument is text PostgreSQL cannot hold.
func badText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return true
		}
	}
	return false
}
