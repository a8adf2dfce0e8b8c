package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

// The examples run against a real, migrated database made for this test
// binary (TEST_DATABASE_URL, as every test here): exampleDB.
var exampleDB *pgxpool.Pool

// mainTB lets TestMain make the examples' database with dbtest.
type mainTB struct {
	testing.TB
	cleanups []func()
}

func (m *mainTB) Helper()                         {}
func (m *mainTB) Cleanup(f func())                { m.cleanups = append(m.cleanups, f) }
func (m *mainTB) Fatal(args ...any)               { log.Fatal(args...) }
func (m *mainTB) Fatalf(format string, a ...any)  { log.Fatalf(format, a...) }
func (m *mainTB) Errorf(format string, a ...any)  { log.Printf(format, a...) }
func (m *mainTB) Logf(format string, args ...any) { log.Printf(format, args...) }

func TestMain(m *testing.M) {
	tb := &mainTB{}
	url := dbtest.NewDatabase(tb)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		log.Fatal(err)
	}
	exampleDB = pool
	code := m.Run()
	pool.Close()
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	os.Exit(code)
}

// inTx runs fn in one transaction on the example database: the app's
// domain change and Switchboard's call commit together.
func inTx(fn func(tx pgx.Tx) error) {
	if err := pgx.BeginFunc(context.Background(), exampleDB, fn); err != nil {
		fmt.Println("error:", err)
	}
}

// rolledBack runs fn in a transaction that is rolled back: a failed call
// aborts the transaction, as in any app.
func rolledBack(fn func(tx pgx.Tx)) {
	tx, err := exampleDB.Begin(context.Background())
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer tx.Rollback(context.Background())
	fn(tx)
}

func ExampleSendSMS() {
	ctx := context.Background()
	reminder := jobs.SendSMSParams{
		IdempotencyKey: "appt-4711-reminder",
		To:             "+14155550123",
		Body:           "Your appointment is tomorrow at 9:00.",
		NotAfter:       time.Now().Add(6 * time.Hour),
		TimeZone:       "America/New_York",
	}
	var id int64
	inTx(func(tx pgx.Tx) error {
		// ... the app's own INSERT/UPDATE on tx ...
		var err error
		id, err = jobs.SendSMS(ctx, tx, reminder)
		return err
	})
	var status, kind string
	_ = exampleDB.QueryRow(ctx, `SELECT m.status, j.kind FROM switchboard.messages m
		JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, id).Scan(&status, &kind)
	fmt.Println(status, kind)

	// The same key and content again: the same message, no second job.
	inTx(func(tx pgx.Tx) error {
		again, err := jobs.SendSMS(ctx, tx, reminder)
		fmt.Println("same id:", again == id)
		return err
	})

	// Bad input is an error naming the field; nothing is written.
	rolledBack(func(tx pgx.Tx) {
		_, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "bad", To: "4155550123", Body: "hi"})
		fmt.Println(errors.Is(err, jobs.ErrInvalidInput))
	})
	// Output:
	// queued sms_send
	// same id: true
	// true
}

func ExampleCancelSMS() {
	ctx := context.Background()
	inTx(func(tx pgx.Tx) error {
		id, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "cancel-example",
			To: "+14155550123", Body: "Reminder", NotBefore: time.Now().Add(time.Hour)})
		if err != nil {
			return err
		}
		cancelled, err := jobs.CancelSMS(ctx, tx, id)
		fmt.Println("cancelled:", cancelled)
		again, _ := jobs.CancelSMS(ctx, tx, id)
		fmt.Println("cancelled again:", again)
		return err
	})
	// Output:
	// cancelled: true
	// cancelled again: false
}

func ExampleUpsertPatient() {
	ctx := context.Background()
	inTx(func(tx pgx.Tx) error {
		id, err := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{
			ExternalRef: "patient-88", GivenName: "Ada", FamilyName: "Example", Gender: "female",
			BirthDate: time.Date(1980, 5, 17, 0, 0, 0, 0, time.UTC),
		})
		fmt.Println("patient stored:", id > 0)
		// The same call again updates the same patient.
		again, _ := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{ExternalRef: "patient-88", GivenName: "Ada", FamilyName: "Example"})
		fmt.Println("same patient:", again == id)
		return err
	})
	// Output:
	// patient stored: true
	// same patient: true
}

func ExampleRecordObservation() {
	ctx := context.Background()
	inTx(func(tx pgx.Tx) error {
		if _, err := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{ExternalRef: "patient-obs"}); err != nil {
			return err
		}
		at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
		id, err := jobs.RecordObservation(ctx, tx, jobs.RecordObservationParams{
			PatientExternalRef: "patient-obs", Kind: "heart_rate", Value: 62, Unit: "/min", EffectiveStart: at,
		})
		fmt.Println("observation recorded:", id > 0)
		return err
	})
	rolledBack(func(tx pgx.Tx) {
		_, bad := jobs.RecordObservation(ctx, tx, jobs.RecordObservationParams{
			PatientExternalRef: "patient-obs", Kind: "heart_rate", Value: 62, Unit: "kg",
			EffectiveStart: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		})
		fmt.Println("wrong unit refused:", errors.Is(bad, jobs.ErrInvalidInput))
	})
	// Output:
	// observation recorded: true
	// wrong unit refused: true
}

func ExamplePushFHIR() {
	ctx := context.Background()
	inTx(func(tx pgx.Tx) error {
		resource := map[string]any{
			"resourceType": "CarePlan",
			"status":       "active",
			"intent":       "plan",
			"subject":      map[string]any{"display": "patient-88"},
		}
		id, err := jobs.PushFHIR(ctx, tx, resource, &jobs.PushFHIROpts{IdempotencyKey: "careplan-1"})
		fmt.Println("queued for push:", id > 0, err)
		return nil
	})
	// Output:
	// queued for push: true <nil>
}

func ExampleEnqueue() {
	ctx := context.Background()
	rolledBack(func(tx pgx.Tx) {
		// No shipped kind is app-enqueueable: each has its own function.
		_, err := jobs.Enqueue(ctx, tx, jobs.KindSMSSend, map[string]any{"message_id": 1}, nil)
		fmt.Println(errors.Is(err, jobs.ErrInvalidInput))
		fmt.Println(err)
	})
	// Output:
	// true
	// switchboard.enqueue: kind sms_send is not a job kind apps may enqueue
}

func ExampleWearablesConnectLink() {
	ctx := context.Background()
	inTx(func(tx pgx.Tx) error {
		if _, err := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{ExternalRef: "patient-fit"}); err != nil {
			return err
		}
		tok, err := jobs.WearablesConnectLink(ctx, tx, "patient-fit", 15*time.Minute)
		// Send the patient to <PUBLIC_BASE_URL>/oauth/google-health/start?link=<tok>.
		fmt.Println("link token issued:", tok != "", err)
		return nil
	})
	// Output:
	// link token issued: true <nil>
}

func ExampleWearablesUploadToken() {
	ctx := context.Background()
	inTx(func(tx pgx.Tx) error {
		if _, err := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{ExternalRef: "patient-ios"}); err != nil {
			return err
		}
		tok, err := jobs.WearablesUploadToken(ctx, tx, "patient-ios")
		// The iOS app sends it as a bearer token to POST /v1/apple-health/samples.
		fmt.Println("upload token issued:", tok != "", err)
		return nil
	})
	// Output:
	// upload token issued: true <nil>
}

func ExampleWearablesDisconnect() {
	ctx := context.Background()
	rolledBack(func(tx pgx.Tx) {
		_, err := jobs.WearablesDisconnect(ctx, tx, 424242, "app@example")
		fmt.Println("unknown connection:", errors.Is(err, jobs.ErrInvalidInput))
	})
	// Output:
	// unknown connection: true
}
