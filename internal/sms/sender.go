package sms

import (
	"errors"
	"fmt"
	"time"
)

// Outbound is one message to hand to a provider.
type Outbound struct {
	// MessageID is Switchboard's message id. It travels in the status
	// callback URL (?m=<id>); a status report is matched to its message by
	// the provider's message id (ApplyReport), and reconciliation uses the
	// ?m= where the provider echoes the URL (Telnyx), so a copy whose send
	// response was lost is still recognised as this message's.
	MessageID int64
	To        string
	Body      string
	// StatusCallbackURL is where the provider posts status reports.
	StatusCallbackURL string
	// ValidityPeriod bounds how long the provider may queue the message; 0
	// leaves the provider's default.
	ValidityPeriod time.Duration
}

// LogValue keeps the recipient and the body out of logs.
func (o Outbound) String() string { return fmt.Sprintf("sms.Outbound{MessageID:%d}", o.MessageID) }

// Accepted is a provider's acceptance of a message.
type Accepted struct {
	ProviderMessageID string
	// Status is the provider's own status word at acceptance (Twilio: queued).
	Status   string
	Segments int
	// ErrorCode is the provider's error code for a failed message, when a
	// lookup (not a send) returns one.
	ErrorCode string
}

// Candidate is a message a provider accepted that may be the copy of the
// message looked for.
type Candidate struct {
	Accepted
	// CreatedAt is when the provider created it, by its clock and at its
	// precision (Twilio: whole seconds).
	CreatedAt time.Time
	// Tagged says the provider echoed the status callback URL, which
	// carries ?m=<message id>, and it is the looked-for message's: this is
	// its copy, whatever else was sent with the same body.
	Tagged bool
}

// Class is the outcome class of a provider call (DESIGN.md "Outcomes").
type Class string

// Outcome classes.
const (
	// ClassRecipient is a final, negative answer about the recipient
	// (invalid number, opted out, landline): the message ends, no dead letter.
	ClassRecipient Class = "recipient"
	// ClassPermanent is our own failure (credentials, request, config): a
	// dead letter an operator must act on.
	ClassPermanent Class = "permanent"
	// ClassRetryable means the provider certainly did not accept the request
	// (connection refused before it was written): retry with backoff.
	ClassRetryable Class = "retryable"
	// ClassAmbiguous means the request left and the answer was lost (timeout,
	// reset, 5xx): never resend before asking the provider.
	ClassAmbiguous Class = "ambiguous"
	// ClassThrottled is a 429: wait RetryAfter, spending no attempt.
	ClassThrottled Class = "throttled"
	// ClassUnavailable means a circuit breaker is open for the provider.
	ClassUnavailable Class = "unavailable"
)

// Reason codes for messages that end negatively.
const (
	ReasonInvalidNumber = "invalid_number"
	ReasonOptedOut      = "opted_out"
	ReasonUnreachable   = "unreachable"
	ReasonExpired       = "expired"
)

// SendError is a classified provider failure. Its text never holds a request
// or response body, a phone number or a message body.
type SendError struct {
	Provider   string
	Class      Class
	HTTPStatus int    // 0 when no response arrived
	Code       string // the provider's error code, if any
	// Reason is set for ClassRecipient: ReasonInvalidNumber, ReasonOptedOut…
	Reason     string
	RetryAfter time.Duration
	Err        error // the underlying error (network, decoding), without PHI
}

func (e *SendError) Error() string {
	s := fmt.Sprintf("%s %s error", e.Provider, e.Class)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (http %d)", e.HTTPStatus)
	}
	if e.Code != "" {
		s += " code " + e.Code
	}
	if e.Reason != "" {
		s += " reason " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *SendError) Unwrap() error { return e.Err }

// AsSendError returns err's *SendError, or one of class ClassAmbiguous
// wrapping err when a provider returned something unclassified: the safe
// reading of an unknown failure is that the request may have been accepted.
func AsSendError(provider string, err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return &SendError{Provider: provider, Class: ClassAmbiguous, Err: err}
}
