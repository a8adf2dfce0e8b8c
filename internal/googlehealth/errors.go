package googlehealth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-health/switchboard/internal/resilience"
)

// Class is what a worker does with an error.
type Class string

// Classes of Google errors (DESIGN.md's outcome classes, plus what only a
// patient can fix).
const (
	// ClassUnauthorized: 401, the access token is no longer accepted.
	ClassUnauthorized Class = "unauthorized"
	// ClassPermissionDenied: 403, the scope was not granted (or a legacy
	// Fitbit login): the data type is disabled, the patient must act.
	ClassPermissionDenied Class = "permission_denied"
	// ClassNotLinked: 400 ACCOUNT_NOT_LINKED, no Google Health profile.
	ClassNotLinked Class = "account_not_linked"
	// ClassThrottled: 429 / RESOURCE_EXHAUSTED.
	ClassThrottled Class = "throttled"
	// ClassRetryable: 5xx, network trouble (reads are idempotent).
	ClassRetryable Class = "retryable"
	// ClassPermanent: our request is wrong (400, 404): an operator must act.
	ClassPermanent Class = "permanent"
	// ClassGone: 410 from a legacy Fitbit endpoint: reconnect.
	ClassGone Class = "gone"
)

// Error is an error answered by the Google Health API. Its text never holds
// the response body.
type Error struct {
	HTTPStatus int
	// Status is Google's status name, e.g. INVALID_ARGUMENT.
	Status string
	// Reason is the ErrorInfo reason, e.g. ACCOUNT_NOT_LINKED, when given.
	Reason     string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("google health api: http %d", e.HTTPStatus)
	if e.Status != "" {
		s += " " + e.Status
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Class returns the error's class.
func (e *Error) Class() Class {
	switch {
	case e.HTTPStatus == http.StatusUnauthorized:
		return ClassUnauthorized
	case e.HTTPStatus == http.StatusForbidden:
		return ClassPermissionDenied
	case e.HTTPStatus == http.StatusTooManyRequests || e.Status == "RESOURCE_EXHAUSTED":
		return ClassThrottled
	case e.HTTPStatus == http.StatusGone:
		return ClassGone
	case e.Reason == "ACCOUNT_NOT_LINKED" || e.Status == "ACCOUNT_NOT_LINKED":
		return ClassNotLinked
	case e.HTTPStatus >= 500 || e.HTTPStatus == http.StatusRequestTimeout || e.Status == "MALFORMED_RESPONSE":
		return ClassRetryable
	default:
		return ClassPermanent
	}
}

// ClassOf classifies any error of this package: an *Error by its status, an
// *OAuthError by its code, anything else (network, timeout) as retryable.
func ClassOf(err error) Class {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Class()
	}
	var oe *OAuthError
	if errors.As(err, &oe) {
		switch {
		case oe.Code == "invalid_grant":
			return ClassUnauthorized
		case oe.HTTPStatus >= 500 || oe.HTTPStatus == 0:
			return ClassRetryable
		case oe.HTTPStatus == http.StatusTooManyRequests:
			return ClassThrottled
		default:
			return ClassPermanent
		}
	}
	return ClassRetryable
}

// apiErrorBody is Google's error envelope.
type apiErrorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Details []struct {
			Type   string `json:"@type"`
			Reason string `json:"reason"`
		} `json:"details"`
	} `json:"error"`
}

func newError(resp *http.Response, body []byte) *Error {
	e := &Error{HTTPStatus: resp.StatusCode, RetryAfter: resilience.RetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var b apiErrorBody
	if json.Unmarshal(body, &b) == nil {
		e.Status = b.Error.Status
		for _, d := range b.Error.Details {
			if d.Reason != "" {
				e.Reason = d.Reason
				break
			}
		}
	}
	return e
}

// ErrInvalidGrant is matched (errors.Is) by an *OAuthError whose code is
// invalid_grant: the refresh token (or code) is dead; the patient must
// consent again. Never retry it.
var ErrInvalidGrant = errors.New("invalid_grant")

// OAuthError is an error answered by Google's OAuth token endpoints. Its
// text holds the OAuth error code, never a token or the body.
type OAuthError struct {
	HTTPStatus int
	Code       string // invalid_grant, invalid_client, …
	Op         string // exchange, refresh, revoke
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("google oauth %s: http %d %s", e.Op, e.HTTPStatus, e.Code)
}

// Is matches ErrInvalidGrant.
func (e *OAuthError) Is(target error) bool {
	return target == ErrInvalidGrant && e.Code == "invalid_grant"
}
