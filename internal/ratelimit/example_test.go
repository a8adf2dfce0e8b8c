package ratelimit_test

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/internal/ratelimit"
)

func ExampleParseLimit() {
	for _, s := range []string{"1/s", "300/min", "10/s burst 5", "6000/10m burst 100", "300 per minute"} {
		l, err := ratelimit.ParseLimit(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-20s one every %s, %d back to back\n", l, l.Interval(), l.Burst)
	}
	// Output:
	// 1/s                  one every 1s, 1 back to back
	// 300/min              one every 200ms, 1 back to back
	// 10/s burst 5         one every 100ms, 5 back to back
	// 6000/10m burst 100   one every 100ms, 100 back to back
	// invalid rate limit "300 per minute": want N/PERIOD[ burst B], e.g. 300/min
}

// A worker asks before it calls the vendor and snoozes its job instead of
// sleeping when told to wait.
func ExampleLimiter_Take() {
	var pool *pgxpool.Pool // the worker's pool
	limiter := ratelimit.New(pool)
	limit, _ := ratelimit.ParseLimit("1/s")

	work := func(ctx context.Context, senderID string) error {
		wait, err := limiter.Take(ctx, "twilio:"+senderID, limit)
		if err != nil {
			return err
		}
		if wait > 0 {
			return river.JobSnooze(wait)
		}
		// ... call the vendor ...
		return nil
	}
	_ = work
}
