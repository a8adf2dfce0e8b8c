package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	twclient "github.com/twilio/twilio-go/client"

	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/sms"
)

// Provider is the provider name this adapter reports.
const Provider = "twilio"

// Waits for throttled calls (DESIGN.md "Outcomes": throttled snoozes without
// spending an attempt).
const (
	// defaultThrottleWait is used for a 429 without a usable Retry-After.
	defaultThrottleWait = time.Second
	// slowThrottleWait is used for queue-full codes (21611, 30001): the
	// sender's queue drains at its own rate, so hammering it is pointless.
	slowThrottleWait = time.Minute
)

// ErrUndecodable is wrapped by errors for responses twilio-go could not
// decode (an HTML page from a proxy, a cut or garbage body).
var ErrUndecodable = errors.New("twilio: undecodable response")

// errRedirect is the adapter's error for a 3xx answer: the base URL points
// at something that is not Twilio's API.
var errRedirect = errors.New("twilio: unexpected redirect")

// Error is a failure Twilio's API reported: the HTTP status and Twilio's
// error code. Its text never holds the message Twilio returned, which may
// quote the recipient's number.
type Error struct {
	Status     int
	Code       int
	RetryAfter time.Duration
	// MoreInfo is Twilio's documentation link for the code.
	MoreInfo string
}

func (e *Error) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("twilio api error (http %d)", e.Status)
	}
	return fmt.Sprintf("twilio api error %d (http %d)", e.Code, e.Status)
}

// rule is the outcome of one Twilio error code.
type rule struct {
	class  sms.Class
	reason string        // for sms.ClassRecipient
	wait   time.Duration // for sms.ClassThrottled: the wait without Retry-After
}

// codeRules classifies Twilio error codes (docs/api/errors/<code>; see
// docs/reference messaging.md §2). Codes not listed here are classified by
// their HTTP status: 5xx as a lost answer, any other as our own permanent
// failure, since Twilio says its codes may change and an unknown one must
// not be retried automatically.
var codeRules = map[int]rule{
	// Throttling: the request was never processed.
	20429: {class: sms.ClassThrottled, wait: defaultThrottleWait}, // too many requests
	21611: {class: sms.ClassThrottled, wait: slowThrottleWait},    // sender's queue holds over 10 hours
	30001: {class: sms.ClassThrottled, wait: slowThrottleWait},    // queue overflow

	// The recipient: a final answer, no dead letter, no failover.
	21211: {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // invalid To
	21612: {class: sms.ClassRecipient, reason: sms.ReasonUnreachable},   // To not reachable (routable) by SMS
	21614: {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // not a mobile number
	21635: {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // landline
	30005: {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // unknown handset
	30006: {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // landline or unreachable carrier
	21610: {class: sms.ClassRecipient, reason: sms.ReasonOptedOut},      // recipient replied STOP
	30003: {class: sms.ClassRecipient, reason: sms.ReasonUnreachable},   // unreachable handset
	30004: {class: sms.ClassRecipient, reason: sms.ReasonUnreachable},   // message blocked

	// Our configuration or content: an operator must act. Listed for the
	// record; an unlisted code gets the same class from its 4xx status.
	20003: {class: sms.ClassPermanent}, // authentication failed
	21408: {class: sms.ClassPermanent}, // region not enabled
	21602: {class: sms.ClassPermanent}, // body missing
	21617: {class: sms.ClassPermanent}, // body too long
	21606: {class: sms.ClassPermanent}, // From not a valid sender for the account
	21659: {class: sms.ClassPermanent}, // From not a Twilio number
	21608: {class: sms.ClassPermanent}, // unverified To (trial account)
	30002: {class: sms.ClassPermanent}, // account suspended
	30007: {class: sms.ClassPermanent}, // carrier filtering
	30032: {class: sms.ClassPermanent}, // toll-free number not verified
	30034: {class: sms.ClassPermanent}, // unregistered 10DLC number
}

// attempt is everything one SDK call revealed: its error and what the
// transport saw.
type attempt struct {
	// idempotent is true for reads (list, fetch), which may be repeated
	// freely, and false for a send, which must not be repeated blindly.
	idempotent bool
	// err is the SDK's error, or the adapter's own for an unusable success
	// (a 2xx without a message SID, a redirect).
	err  error
	seen seen
	now  time.Time
}

// classify turns a failed call into the *sms.SendError the worker acts on.
// It is the only place Twilio failures are classified; its order is:
//
//  1. The SDK never reached the network (local validation): permanent.
//  2. No response arrived. Nothing fully written: retryable, Twilio
//     certainly did not accept it. Written, then a timeout, reset or
//     cancellation: ambiguous for a send, retryable for a read.
//  3. A 5xx, whatever its body (an HTML 502 the SDK cannot decode
//     included): ambiguous for a send, retryable for a read.
//  4. HTTP 429 or code 20429: throttled, waiting Retry-After (seconds or
//     an HTTP date; 1s when absent or unusable; at most 1h).
//  5. A code listed in codeRules: its class.
//  6. A 2xx that could not be used (garbage body, no SID): ambiguous for a
//     send, since the message may have been accepted; retryable for a read.
//  7. Anything else (401, 403, other 4xx, 3xx): permanent.
//
// The returned error's text holds statuses and codes only: never a body,
// number or URL (list URLs carry the recipient's number).
func classify(a attempt) *sms.SendError {
	se := &sms.SendError{Provider: Provider, HTTPStatus: a.seen.status}

	code, restErr := apiCode(a.err)
	if code != 0 {
		se.Code = strconv.Itoa(code)
	}
	lost := func() sms.Class {
		if a.idempotent {
			return sms.ClassRetryable
		}
		return sms.ClassAmbiguous
	}

	switch status := a.seen.status; {
	case status == 0 && !a.seen.called:
		se.Class = sms.ClassPermanent
		se.Err = localError(a.err, code, restErr)
		return se
	case status == 0:
		se.Err = transportError(a.err, a.seen.wrote)
		if a.seen.wrote {
			se.Class = lost()
		} else {
			se.Class = sms.ClassRetryable
		}
		return se
	case status >= 500:
		se.Class = lost()
	case status == http.StatusTooManyRequests || code == 20429:
		se.Class = sms.ClassThrottled
		se.RetryAfter = retryAfter(a.seen.retryAfter, a.now, defaultThrottleWait)
	default:
		if r, ok := codeRules[code]; ok {
			se.Class, se.Reason = r.class, r.reason
			if r.class == sms.ClassThrottled {
				se.RetryAfter = retryAfter(a.seen.retryAfter, a.now, r.wait)
			}
		} else if status < 300 {
			se.Class = lost()
		} else {
			se.Class = sms.ClassPermanent
		}
	}

	switch {
	case restErr != nil:
		se.Err = &Error{Status: a.seen.status, Code: code, RetryAfter: se.RetryAfter, MoreInfo: restErr.MoreInfo}
	case a.err == nil:
		se.Err = &Error{Status: a.seen.status, RetryAfter: se.RetryAfter}
	case errors.Is(a.err, errRedirect), errors.Is(a.err, ErrUndecodable):
		se.Err = a.err
	default:
		// A response arrived but the SDK could not decode it.
		se.Err = fmt.Errorf("%w: %w", ErrUndecodable, sanitize(a.err))
	}
	return se
}

// restError is the part of a twilio-go API error classify uses.
type restError struct{ MoreInfo string }

// apiCode extracts Twilio's error code from an SDK error, if the SDK could
// decode one.
func apiCode(err error) (int, *restError) {
	var te *twclient.TwilioRestError
	if errors.As(err, &te) {
		return te.Code, &restError{MoreInfo: te.MoreInfo}
	}
	var v1 *twclient.RestErrorV1
	if errors.As(err, &v1) {
		return v1.Code, &restError{}
	}
	return 0, nil
}

// localError describes a failure that happened before any request: the SDK
// rejecting our credentials (21222/21224) or a request it could not build.
func localError(err error, code int, restErr *restError) error {
	if restErr != nil {
		return &Error{Code: code, MoreInfo: restErr.MoreInfo}
	}
	return fmt.Errorf("twilio request not built: %w", sanitize(err))
}

// transportError describes a failure without a response.
func transportError(err error, wrote bool) error {
	if wrote {
		return fmt.Errorf("twilio response lost after the request was sent: %w", sanitize(err))
	}
	return fmt.Errorf("twilio request not sent: %w", sanitize(err))
}

// sanitize keeps PHI out of an error's text: a *url.Error quotes the
// request URL, and a list URL holds the recipient's number, so only its
// cause is kept. The SDK's decoding errors and the adapter's own hold no
// body or number.
func sanitize(err error) error {
	if err == nil {
		return errors.New("unknown error")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter is Retry-After as of now (resilience.RetryAfter), or def
// when it gives none; at most resilience.MaxThrottleWait either way.
func retryAfter(header string, now time.Time, def time.Duration) time.Duration {
	if d := resilience.RetryAfter(header, now); d > 0 {
		return d
	}
	return min(def, resilience.MaxThrottleWait)
}
