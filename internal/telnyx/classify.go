package telnyx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/sms"
)

// Provider is the provider name this adapter reports.
const Provider = "telnyx"

// Waits for throttled calls (DESIGN.md "Outcomes": throttled snoozes without
// spending an attempt).
const (
	// defaultThrottleWait is used for a 429 without a usable header.
	defaultThrottleWait = time.Second
	// slowThrottleWait is used for the carrier's upstream rate limit
	// (40011): the carrier drains at its own pace.
	slowThrottleWait = time.Minute
)

// Rate-limit headers, read in this order (messaging.md §3, the order of
// Telnyx's own SDK, with x-ratelimit-reset last: x-should-retry, which the
// SDK reads too, is a yes/no and our classes already decide that).
const (
	headerRetryAfterMs   = "Retry-After-Ms"
	headerRetryAfter     = "Retry-After"
	headerRateLimitReset = "X-Ratelimit-Reset"
)

// ErrUndecodable is wrapped by errors for responses that could not be
// decoded: an HTML page from a proxy, a cut or garbage body, a success
// without a message id.
var ErrUndecodable = errors.New("telnyx: undecodable response")

// errRedirect is the adapter's error for a 3xx answer: the base URL points
// at something that is not Telnyx's API.
var errRedirect = errors.New("telnyx: unexpected redirect")

// Error is a failure Telnyx's API reported: the HTTP status and the error
// codes of its body. Its text never holds the title or detail Telnyx
// returned, which may quote the recipient's number.
type Error struct {
	Status int
	// Code is the code that decided the class (the first one when none
	// did); Codes are all the codes of the body, in order. Telnyx codes
	// are strings ("10011").
	Code  string
	Codes []string
	// Pointer is the JSON pointer of the field Code is about ("/to"), if
	// Telnyx named one.
	Pointer    string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("telnyx api error (http %d)", e.Status)
	if e.Code != "" {
		s = fmt.Sprintf("telnyx api error %s (http %d)", e.Code, e.Status)
	}
	if e.Pointer != "" {
		s += " at " + e.Pointer
	}
	return s
}

// rule is the outcome of one Telnyx error code.
type rule struct {
	class  sms.Class
	reason string        // for sms.ClassRecipient
	wait   time.Duration // for sms.ClassThrottled: the wait without a header
	// lost marks Telnyx's own failures (unexpected error, timeout): the
	// request may have been processed, as after a 5xx.
	lost bool
}

// codeRules classifies Telnyx error codes (developers.telnyx.com/api/errors;
// messaging.md §3). A recipient rule applies only when the error points at
// the recipient ("/to") or at no field: the same code about "/from" is our
// own configuration, a permanent failure. Codes not listed here are
// classified by their HTTP status: 5xx as a lost answer, any other as our
// own permanent failure.
//
// Decisions beyond the table in messaging.md:
//   - 40003 (blocked as spam, permanent) is permanent, not recipient: the
//     carrier blocked our sending number, an operator must act, and every
//     other recipient would fail the same way.
//   - 40002 (spam, temporary) is permanent too: "review content" is an
//     operator's job; a snooze would loop.
//   - 10007 and 10008 are Telnyx's own failures: lost, like a 5xx.
//
// 40001–40014 are delivery errors, documented for message.finalized and
// detail records; they are listed in case Telnyx answers a send with one.
var codeRules = map[string]rule{
	// Throttling: the request was never processed.
	"10011": {class: sms.ClassThrottled, wait: defaultThrottleWait}, // too many requests
	"40011": {class: sms.ClassThrottled, wait: slowThrottleWait},    // upstream (carrier) rate limit

	// The recipient: a final answer, no dead letter, no failover.
	"10002": {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // invalid phone number
	"10016": {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // not +E.164
	"40001": {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // not routable (landline)
	"40012": {class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber}, // destination rejected by the carrier
	"40300": {class: sms.ClassRecipient, reason: sms.ReasonOptedOut},      // blocked due to STOP (HTTP 409)

	// Telnyx's own failures: the request may have been processed.
	"10007": {class: sms.ClassAmbiguous, lost: true}, // unexpected error
	"10008": {class: sms.ClassAmbiguous, lost: true}, // request timeout

	// Our credentials, configuration or request: an operator must act.
	// Listed for the record; an unlisted 4xx code gets the same class.
	"10001": {class: sms.ClassPermanent}, // inactive phone number (our sender)
	"10003": {class: sms.ClassPermanent}, // invalid URL (webhook_url)
	"10004": {class: sms.ClassPermanent}, // missing required parameter
	"10005": {class: sms.ClassPermanent}, // resource not found
	"10006": {class: sms.ClassPermanent}, // invalid id
	"10009": {class: sms.ClassPermanent}, // authentication failed (401)
	"10010": {class: sms.ClassPermanent}, // authorization failed (403)
	"10015": {class: sms.ClassPermanent}, // bad request
	"40002": {class: sms.ClassPermanent}, // blocked as spam, temporary
	"40003": {class: sms.ClassPermanent}, // blocked as spam, permanent
	"40009": {class: sms.ClassPermanent}, // invalid message body
	"40013": {class: sms.ClassPermanent}, // source number rejected by the carrier
}

// apiError is one element of Telnyx's error body.
type apiError struct {
	Code   code   `json:"code"`
	Source source `json:"source"`
}

type source struct {
	Pointer string `json:"pointer"`
}

// code is a Telnyx error code: a JSON string ("10011") per the API
// reference, a number accepted too.
type code string

// UnmarshalJSON accepts a string or a number.
func (c *code) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = code(s)
		return nil
	}
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*c = code(n.String())
	return nil
}

// decodeErrors reads Telnyx's error body {"errors":[{"code",…}]}; ok is
// false when the body is not one.
func decodeErrors(body []byte) (errs []apiError, ok bool) {
	var v struct {
		Errors []apiError `json:"errors"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Errors == nil {
		return nil, false
	}
	return v.Errors, true
}

// attempt is everything one API call revealed.
type attempt struct {
	// idempotent is true for reads (fetch, search, probe), which may be
	// repeated freely, and false for a send, which must not be repeated
	// blindly.
	idempotent bool
	ex         exchange
	// err says why a 2xx could not be used (garbage, no id); nil otherwise.
	err error
	now time.Time
}

// classify turns a failed call into the *sms.SendError the worker acts on.
// It is the only place Telnyx failures are classified; its rules, in order:
//
//  1. The request could not be built: permanent.
//  2. No response arrived. Nothing fully written (refused, DNS, TLS,
//     cancelled before sending): retryable, Telnyx certainly did not
//     accept it. Written, then a timeout, reset or cancellation:
//     ambiguous for a send, retryable for a read.
//  3. A 5xx, whatever its body: ambiguous for a send, retryable for a read.
//  4. HTTP 429 or code 10011: throttled, waiting Retry-After-Ms,
//     Retry-After (seconds or an HTTP date) or x-ratelimit-reset (seconds,
//     or a Unix time), the first one usable; 1s without; at most 1h.
//  5. The first code of the body listed in codeRules: its class (a
//     recipient code about a field other than "/to" is permanent).
//  6. A 2xx that could not be used: ambiguous for a send, since the
//     message may have been accepted; retryable for a read.
//  7. Anything else (401, 403, 404, 409, 422, other 4xx, 3xx): permanent.
//
// The returned error's text holds statuses, codes and field pointers only:
// never a body, number or URL (search URLs carry the recipient's number).
func classify(a attempt) *sms.SendError {
	ex := a.ex
	se := &sms.SendError{Provider: Provider, HTTPStatus: ex.status}
	lost := sms.ClassAmbiguous
	if a.idempotent {
		lost = sms.ClassRetryable
	}

	switch {
	case !ex.built:
		se.Class = sms.ClassPermanent
		se.Err = fmt.Errorf("telnyx request not built: %w", sanitize(ex.err))
		return se
	case ex.status == 0 && ex.wrote:
		se.Class = lost
		se.Err = fmt.Errorf("telnyx response lost after the request was sent: %w", sanitize(ex.err))
		return se
	case ex.status == 0:
		se.Class = sms.ClassRetryable
		se.Err = fmt.Errorf("telnyx request not sent: %w", sanitize(ex.err))
		return se
	}

	var (
		errs    []apiError
		decoded bool
	)
	if ex.status >= 300 {
		errs, decoded = decodeErrors(ex.body)
	}
	apiErr := &Error{Status: ex.status}
	for _, e := range errs {
		if e.Code != "" {
			apiErr.Codes = append(apiErr.Codes, string(e.Code))
		}
	}
	// decide records the code that decided the class.
	decide := func(e apiError) {
		apiErr.Code, apiErr.Pointer = string(e.Code), e.Source.Pointer
	}
	if len(errs) > 0 {
		decide(errs[0])
	}

	switch {
	case ex.status >= 500:
		se.Class = lost
	case ex.status == http.StatusTooManyRequests || hasCode(errs, "10011"):
		se.Class = sms.ClassThrottled
		if i := indexCode(errs, "10011"); i >= 0 {
			decide(errs[i])
		}
		se.RetryAfter = throttleWait(ex.header, a.now, defaultThrottleWait)
	default:
		if e, r, ok := firstRule(errs); ok {
			decide(e)
			se.Class, se.Reason = r.class, r.reason
			switch {
			case r.lost:
				se.Class = lost
			case r.class == sms.ClassThrottled:
				se.RetryAfter = throttleWait(ex.header, a.now, r.wait)
			case r.class == sms.ClassRecipient && e.Source.Pointer != "" && e.Source.Pointer != "/to":
				// The code is about our sender or another field of ours.
				se.Class, se.Reason = sms.ClassPermanent, ""
			}
		} else if ex.status < 300 {
			se.Class = lost
		} else {
			se.Class = sms.ClassPermanent
		}
	}
	se.Code = apiErr.Code
	apiErr.RetryAfter = se.RetryAfter

	switch {
	case ex.status < 300:
		cause := a.err
		if cause == nil {
			cause = ex.err // the body was cut
		}
		se.Err = cause
		if cause == nil || !errors.Is(cause, ErrUndecodable) {
			se.Err = fmt.Errorf("%w: %w", ErrUndecodable, sanitize(cause))
		}
	case ex.status < 400:
		se.Err = fmt.Errorf("%w: %w", errRedirect, apiErr)
	case !decoded:
		// An HTML page from a proxy, a cut body: classified by status.
		se.Err = fmt.Errorf("%w: %w", ErrUndecodable, apiErr)
	default:
		se.Err = apiErr
	}
	return se
}

// firstRule returns the first error whose code has a rule.
func firstRule(errs []apiError) (apiError, rule, bool) {
	for _, e := range errs {
		if r, ok := codeRules[string(e.Code)]; ok {
			return e, r, true
		}
	}
	return apiError{}, rule{}, false
}

func indexCode(errs []apiError, c string) int {
	for i, e := range errs {
		if string(e.Code) == c {
			return i
		}
	}
	return -1
}

func hasCode(errs []apiError, c string) bool { return indexCode(errs, c) >= 0 }

// sanitize keeps PHI out of an error's text: a *url.Error quotes the
// request URL, and a detail-record search URL holds the recipient's number,
// so only its cause is kept.
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

// throttleWait reads how long to wait from the first usable header of
// Retry-After-Ms (milliseconds), Retry-After (seconds or an HTTP date) and
// x-ratelimit-reset (seconds until the window resets; a value that can only
// be a Unix time is read as one). Absent, unparsable, past or non-positive
// values fall through to the next header, and to def. The result is capped
// at resilience.MaxThrottleWait.
func throttleWait(h http.Header, now time.Time, def time.Duration) time.Duration {
	d := def
	if v, ok := positiveFloat(h.Get(headerRetryAfterMs)); ok {
		d = fromSeconds(v / 1000)
	} else if v, ok := positiveFloat(h.Get(headerRetryAfter)); ok {
		d = fromSeconds(v)
	} else if t, err := http.ParseTime(h.Get(headerRetryAfter)); err == nil && t.After(now) {
		d = t.Sub(now)
	} else if v, ok := positiveFloat(h.Get(headerRateLimitReset)); ok {
		if v >= unixTimeFloor {
			if t := time.Unix(int64(v), 0); t.After(now) {
				d = t.Sub(now)
			}
		} else {
			d = fromSeconds(v)
		}
	}
	return min(d, resilience.MaxThrottleWait)
}

// unixTimeFloor separates a delay in seconds from a Unix time (2001-09-09):
// no rate-limit window lasts 30 years.
const unixTimeFloor = 1e9

func positiveFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0, false
	}
	return v, true
}

// fromSeconds converts seconds to a Duration, saturating instead of
// overflowing.
func fromSeconds(s float64) time.Duration {
	if s >= resilience.MaxThrottleWait.Seconds() {
		return resilience.MaxThrottleWait
	}
	return time.Duration(s * float64(time.Second))
}
