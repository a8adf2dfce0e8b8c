package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/jobs"
)

// metadataSlot is the job metadata key of a booked rate-limit slot.
const metadataSlot = "ratelimit_slot"

// slot applies prov's rate limit: it returns 0 when the message may go now
// (a slot booked earlier and now due, or a free one), or how long to snooze
// for the slot it just booked.
func (w *SendWorker) slot(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider) (time.Duration, error) {
	if prov.Slots == nil {
		return 0, nil
	}
	var meta map[string]any
	if json.Unmarshal(job.Metadata, &meta) == nil {
		if s, ok := meta[metadataSlot].(string); ok {
			if at, err := time.Parse(time.RFC3339Nano, s); err == nil && time.Since(at) > -time.Second && time.Since(at) < time.Minute {
				_ = river.MetadataSet(ctx, metadataSlot, nil) // used up
				return 0, nil
			}
		}
	}
	// Slots are booked at most slotHorizon ahead: River keeps a job snoozed
	// for up to 5 s available with its exact time, so it wakes on time
	// (within a fetch poll); longer snoozes go through the scheduler, whose
	// coarser rounds would wake many booked jobs together.
	wait, booked, err := prov.Slots.Reserve(ctx, slotHorizon)
	if err != nil {
		return 0, fmt.Errorf("error applying rate limit: %w", err)
	}
	if wait <= 0 {
		return 0, nil
	}
	if booked {
		_ = river.MetadataSet(ctx, metadataSlot, time.Now().Add(wait).UTC().Format(time.RFC3339Nano))
		return wait, nil
	}
	// The queue for this sender is longer than the horizon: come back when
	// the free slots are near, spread so the backlog does not return at once.
	return wait - slotHorizon/2 + time.Duration(rand.Int64N(int64(slotHorizon))), nil
}

// slotHorizon is how far ahead a rate-limit slot may be booked.
const slotHorizon = 4 * time.Second
