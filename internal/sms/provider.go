package sms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-health/switchboard/internal/resilience"
)

// The provider contract. An adapter (internal/twilio, internal/telnyx)
// implements Adapter — Sender, ReportFetcher and ReportParser — declares so
// at compile time (var _ sms.Adapter = (*Client)(nil)), and passes the
// shared conformance suite in internal/sms/smstest from its own tests.

// Adapter is everything a provider adapter implements.
type Adapter interface {
	Sender
	ReportFetcher
	ReportParser
	// Probe is a cheap authenticated read (Provider.Probe).
	Probe(ctx context.Context) error
}

// Sender hands messages to one provider. Implementations classify every
// failure once, returning a *SendError.
type Sender interface {
	// Provider names the provider ("twilio", "telnyx").
	Provider() string
	// Send submits the message. On failure it returns a *SendError whose
	// Class says whether the request may have been accepted.
	Send(ctx context.Context, m Outbound) (Accepted, error)
	// FindSent lists the messages the provider accepted since the given
	// time (minus its clock skew) that may be m: to m's recipient, from our
	// sender, with m's body — or carrying m's status callback URL where the
	// provider echoes it, which is decisive (Candidate.Tagged); a message
	// whose echoed callback is another message's is never listed. It
	// returns none only when it read every message that may be m's copy;
	// when it could not (more records in the window than it reads), it
	// returns an error wrapping ErrLookupIncomplete, and the message is held
	// for an operator — an absence that was not proven never leads to a
	// resend. It is how an attempt whose outcome was lost is reconciled
	// before any resend; which candidate is m's copy is decided by the
	// domain (send_reconcile.go), not the adapter.
	//
	// taken says which provider ids other messages already hold: none of
	// those is m's copy, so FindSent never returns one, and an adapter that
	// must read each record to learn whose it is (Telnyx) asks taken first
	// and reads only the rest — on a busy number most records are other
	// messages' copies, and reading them all made a look-up dozens of
	// requests long, so one failed request failed it. nil: none is taken.
	FindSent(ctx context.Context, m Outbound, since time.Time, taken Taken) ([]Candidate, error)
}

// Taken reports which of the provider's message ids (ids) other messages
// already hold, accepted or adopted (FindSent). An error is not the
// provider's: the look-up fails with it.
type Taken func(ctx context.Context, ids []string) (map[string]bool, error)

// Untaken is ids without those taken reports, in order; a nil taken takes
// none.
func Untaken(ctx context.Context, taken Taken, ids []string) ([]string, error) {
	if taken == nil || len(ids) == 0 {
		return ids, nil
	}
	t, err := taken(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("error reading which provider ids other messages hold: %w", err)
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !t[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// ErrLookupIncomplete is what FindSent wraps when it could not read every
// provider record that may be the copy looked for (see FindSent). It is an
// answer, not a provider failure: it is not retried within the call and
// not counted by the breaker.
var ErrLookupIncomplete = errors.New("the provider's records since the attempt could not all be read")

// ErrRecordsNotSettled is what FindSent wraps (in a *SendError of
// ClassThrottled, RetryAfter set) when it found nothing but the provider's
// records may not show the attempt yet (Telnyx's detail records lag): an
// absence is not proven before then. The job is held with hold_reason
// provider_records_lag.
var ErrRecordsNotSettled = errors.New("the provider's records may not show the attempt yet")

// ReportFetcher asks a provider for a message's current status. It returns
// (nil, nil) when the provider does not know the id. Provider adapters
// implement it beside Sender.
type ReportFetcher interface {
	FetchReport(ctx context.Context, providerMessageID string) (*Report, error)
}

// ReportParser turns one stored provider webhook into a status report.
// Provider adapters implement it; a parse error means the webhook can never
// be applied (it is marked ignored, not retried).
type ReportParser interface {
	ParseReport(eventType string, raw []byte) (Report, error)
}

// Provider is one SMS provider as the send worker uses it: the adapter, its
// destination's resilience policies, a cheap probe, and an optional
// distributed rate limit.
type Provider struct {
	Sender Sender
	// Destination guards every call; nil calls the provider unguarded.
	Destination *resilience.Destination
	// Probe is a cheap idempotent read. While the breaker is not closed the
	// trial call that decides whether the provider is back is a probe,
	// never a send: a send into a still-broken provider would spend the
	// message's attempt on an ambiguous failure.
	Probe func(context.Context) error
	// Slots books send slots under the provider's rate limit (per sender
	// number); nil means no limit.
	Slots Reserver
}

// Reserver books the next slot under a rate limit and says how long to wait
// for it; the caller snoozes and then sends without asking again.
type Reserver interface {
	Reserve(ctx context.Context, maxWait time.Duration) (wait time.Duration, booked bool, err error)
}

// findProvider returns the provider named name among providers.
func findProvider(providers []Provider, name string) (Provider, bool) {
	for _, p := range providers {
		if p.Name() == name {
			return p, true
		}
	}
	return Provider{}, false
}

// Name is the provider's name.
func (p Provider) Name() string { return p.Sender.Provider() }

// Outcome tells the resilience layer whether a send or lookup error means
// the provider is failing: only failures that may be an outage count
// (ambiguous and retryable ones); answers about the request do not.
func Outcome(err error) resilience.Outcome {
	var se *SendError
	if errors.As(err, &se) && se.Class != ClassAmbiguous && se.Class != ClassRetryable {
		return resilience.Healthy
	}
	if errors.Is(err, ErrLookupIncomplete) {
		return resilience.Healthy
	}
	return resilience.Failing
}

// call runs fn through the provider's policies. An unavailable destination
// comes back as a *SendError of ClassUnavailable.
func (p Provider) call(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	if p.Destination == nil {
		return fn(ctx)
	}
	err := p.Destination.Call(ctx, idempotent, fn)
	var ue *resilience.UnavailableError
	if errors.As(err, &ue) {
		return &SendError{Provider: p.Name(), Class: ClassUnavailable, RetryAfter: ue.RetryAfter, Err: ue}
	}
	return err
}

// ready reports, before anything is recorded, whether the provider can be
// called now. It returns nil, or a *SendError of ClassUnavailable.
func (p Provider) ready(ctx context.Context) error {
	if p.Destination == nil {
		return nil
	}
	if err := p.Destination.Ready(); err != nil {
		var ue *resilience.UnavailableError
		errors.As(err, &ue)
		return &SendError{Provider: p.Name(), Class: ClassUnavailable, RetryAfter: ue.RetryAfter, Err: ue}
	}
	if p.Probe == nil || p.Destination.BreakerState() == "closed" {
		return nil
	}
	// Half-open, or about to be: the trial call is a probe.
	err := p.call(ctx, true, p.Probe)
	switch {
	case err == nil:
		return nil
	case Outcome(err) == resilience.Failing:
		// Still down: the breaker reopened.
		return &SendError{Provider: p.Name(), Class: ClassUnavailable, RetryAfter: p.Destination.Settings().BreakerOpenFor,
			Err: &resilience.UnavailableError{Destination: p.Name(), Reason: resilience.ReasonBreakerOpen, RetryAfter: p.Destination.Settings().BreakerOpenFor}}
	default:
		var se *SendError
		if errors.As(err, &se) && se.Class == ClassUnavailable {
			return se
		}
		return nil
	}
}

// failoverAllowed reports whether a failed send on one provider may be
// tried on the next: only when the provider provably did not accept the
// message and the failure is about the provider, not the recipient.
func failoverAllowed(c Class) bool {
	switch c {
	case ClassRetryable, ClassUnavailable, ClassPermanent:
		return true
	default: // recipient, ambiguous, throttled
		return false
	}
}
