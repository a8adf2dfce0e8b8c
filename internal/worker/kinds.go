package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-health/switchboard/db"
)

// UnavailableLimits reads each job kind's unavailable limit from
// switchboard.job_kinds, the one source of per-kind settings: how long a job
// of that kind may wait for its destination to come back before it ends as
// a dead letter. Every worker that snoozes while a destination is down takes
// its limit from here.
func UnavailableLimits(ctx context.Context, q db.DBTX) (map[string]time.Duration, error) {
	rows, err := db.New().JobKindList(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("error reading job kinds (is the database migrated?): %w", err)
	}
	out := make(map[string]time.Duration, len(rows))
	for _, k := range rows {
		out[k.Kind] = duration(k.UnavailableLimit)
	}
	return out, nil
}

// duration is iv as a duration, a month counted as 30 days.
func duration(iv pgtype.Interval) time.Duration {
	if !iv.Valid {
		return 0
	}
	return time.Duration(iv.Microseconds)*time.Microsecond +
		time.Duration(iv.Days)*24*time.Hour +
		time.Duration(iv.Months)*30*24*time.Hour
}
