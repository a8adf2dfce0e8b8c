package resilience

import (
	"bytes"
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Why a job is held, the hold_reason River UI shows in its metadata.
const (
	// HoldPaused, HoldBreakerOpen, HoldBusy and HoldUnconfigured are the
	// reasons of an *UnavailableError (Snooze writes them).
	HoldPaused       = ReasonPaused
	HoldBreakerOpen  = ReasonBreakerOpen
	HoldBusy         = ReasonBusy
	HoldUnconfigured = ReasonUnconfigured
	// HoldRateSlot: the job booked a send slot under its destination's
	// rate limit and waits for it.
	HoldRateSlot = "rate_slot"
	// HoldQuietHours: an app message waits out the recipient's quiet hours.
	HoldQuietHours = "quiet_hours"
	// HoldRateLimit: a rate limit of our own for the destination is used
	// up (Google Health's per-user quota); the job waits for the next slot.
	HoldRateLimit = "rate_limit"
	// HoldThrottled: the destination answered 429; the job waits out its
	// Retry-After (or a default when it gave none), at most
	// MaxThrottleWait.
	HoldThrottled = "throttled"
	// HoldEndpointDisabled: the job's EHR endpoint is disabled (`ehr
	// disable`); its pushes wait, no attempt spent, until `ehr enable`.
	HoldEndpointDisabled = "endpoint_disabled"
	// HoldScheduled: a message waits for the send time the app gave it.
	HoldScheduled = "scheduled"
	// HoldInFlight: an earlier attempt may still be on its way to the
	// provider; the job waits out the in-flight grace before asking.
	HoldInFlight = "in_flight_grace"
)

// Job metadata keys a hold writes. A later run clears them (Registry's
// WorkBegin hook) unless it is held again.
const (
	MetadataHoldReason      = "hold_reason"
	MetadataHoldDestination = "hold_destination"
	MetadataHoldUntil       = "hold_until"
)

// MaxThrottleWait bounds a HoldThrottled hold, whatever the destination's
// Retry-After says: a broken or hostile server answering
// `Retry-After: 999999999` would otherwise park the job for 31 years. A
// destination still throttling after it is simply held again.
const MaxThrottleWait = time.Hour

// HoldFor snoozes the running job for wait — no attempt spent — and
// records why in its metadata, where River UI shows it: hold_reason (one of
// the Hold* reasons), hold_destination (empty when none) and hold_until.
// It returns the snooze for the worker to return. A hold lasts at least a
// second; a HoldThrottled one at most MaxThrottleWait.
func HoldFor(ctx context.Context, reason, destination string, wait time.Duration) error {
	if reason == HoldThrottled {
		wait = min(wait, MaxThrottleWait)
	}
	wait = max(wait, time.Second)
	_ = river.MetadataSet(ctx, MetadataHoldReason, reason)
	var dest any
	if destination != "" {
		dest = destination
	}
	_ = river.MetadataSet(ctx, MetadataHoldDestination, dest)
	_ = river.MetadataSet(ctx, MetadataHoldUntil, time.Now().Add(wait).UTC().Format(time.RFC3339))
	return river.JobSnooze(wait)
}

// clearHold removes a previous run's hold from the job's metadata as it
// starts: what River UI shows is the current hold or none.
func clearHold(ctx context.Context, job *rivertype.JobRow) {
	if !bytes.Contains(job.Metadata, []byte(`"`+MetadataHoldReason+`"`)) {
		return
	}
	for _, k := range []string{MetadataHoldReason, MetadataHoldDestination, MetadataHoldUntil} {
		_ = river.MetadataSet(ctx, k, nil)
	}
}
