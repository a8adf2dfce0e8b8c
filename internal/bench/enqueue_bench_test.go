package bench_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

// BenchmarkEnqueue measures one app transaction (a domain row) with and
// without jobs.SendSMS, from parallel clients (-cpu sets how many). The
// command `switchboard bench --scenarios enqueue` is the full comparison.
func BenchmarkEnqueue(b *testing.B) {
	pool, _ := dbtest.NewPool(b)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `CREATE TABLE app_appointments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		patient_ref text NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	payload := fmt.Sprintf("%0260d", 0)
	for _, withSMS := range []bool{false, true} {
		name := "DomainRowOnly"
		if withSMS {
			name = "WithSendSMS"
		}
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "INSERT INTO app_appointments (patient_ref, payload) VALUES ($1, $2)",
							"patient-"+strconv.FormatInt(n%100, 10), payload); err != nil {
							return err
						}
						if !withSMS {
							return nil
						}
						_, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{
							IdempotencyKey: "bench-" + strconv.FormatInt(n, 10), To: "+12015550100",
							Body: "Reminder: your appointment is tomorrow at 9:00.",
						})
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
