package sms

import (
	"context"
	"time"

	"github.com/switchboard-health/switchboard/internal/resilience"
)

// Unconfigured is the Sender of a provider whose credentials are missing or
// placeholders. It is registered behind resilience.RegisterUnconfigured, so
// it is never reached; called unguarded it answers ClassUnavailable and the
// job holds.
type Unconfigured string

// Provider implements Sender.
func (u Unconfigured) Provider() string { return string(u) }

// Send implements Sender: nothing is sent.
func (u Unconfigured) Send(context.Context, Outbound) (Accepted, error) {
	return Accepted{}, u.err()
}

// FindSent implements Sender: nothing can be looked up.
func (u Unconfigured) FindSent(context.Context, Outbound, time.Time, Taken) ([]Candidate, error) {
	return nil, u.err()
}

func (u Unconfigured) err() error {
	ue := &resilience.UnavailableError{Destination: string(u), Reason: resilience.ReasonUnconfigured, RetryAfter: 5 * time.Minute}
	return &SendError{Provider: string(u), Class: ClassUnavailable, RetryAfter: ue.RetryAfter, Err: ue}
}
