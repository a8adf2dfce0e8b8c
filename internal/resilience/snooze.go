package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// metadataUnavailableSince is the job metadata key holding when a job first
// snoozed for an unavailable destination.
const metadataUnavailableSince = "unavailable_since"

// Snooze turns an *UnavailableError into the job's outcome: a snooze until
// the destination may be called again (no attempt spent; the reason and
// destination written to the job's metadata by HoldFor), or — once the job
// has been waiting longer than limit in total — a cancel into a dead letter
// of class unavailable, so an old message does not go out days late. Other
// errors are returned unchanged.
func Snooze(ctx context.Context, job *rivertype.JobRow, err error, limit time.Duration) error {
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		return err
	}
	now := time.Now()
	since := now
	var meta map[string]any
	if json.Unmarshal(job.Metadata, &meta) == nil {
		if s, ok := meta[metadataUnavailableSince].(string); ok {
			if t, perr := time.Parse(time.RFC3339Nano, s); perr == nil {
				since = t
			}
		}
	}
	if limit > 0 && now.Sub(since) >= limit {
		_ = river.MetadataSet(ctx, "outcome_class", "unavailable")
		return river.JobCancel(fmt.Errorf("gave up after %s of waiting: %w", limit, ue))
	}
	if since.Equal(now) {
		_ = river.MetadataSet(ctx, metadataUnavailableSince, now.UTC().Format(time.RFC3339Nano))
	}
	wait := ue.RetryAfter
	if limit > 0 {
		wait = min(wait, since.Add(limit).Sub(now)+time.Second)
	}
	return HoldFor(ctx, ue.Reason, ue.Destination, wait)
}
