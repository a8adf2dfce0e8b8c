package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/fhir/smart"
	"github.com/switchboard-health/switchboard/internal/resilience"
)

// Class is what an outcome means for the job (fhir.md §1 "Retry
// classification"), decided in one place: Classify.
type Class string

// Classes.
const (
	// ClassRetryable: network error, timeout, 502/503/504, a 500 — River backs off.
	ClassRetryable Class = "retryable"
	// ClassThrottled: 429 — snooze until Retry-After, no attempt spent.
	ClassThrottled Class = "throttled"
	// ClassStale: 409/412 on a version-aware update — re-read, re-apply.
	ClassStale Class = "stale"
	// ClassDuplicate: 412 on a conditional create/update — several resources
	// carry our identifier on the EHR. Permanent and alert-worthy.
	ClassDuplicate Class = "duplicate"
	// ClassAuth: 401 after a fresh token, or a token request refused.
	ClassAuth Class = "auth"
	// ClassPermanent: 400, 403, 404, 405, 406, 410, 415, 422, invalid
	// resource, undeclared interaction — dead letter.
	ClassPermanent Class = "permanent"
)

// Error is a failed FHIR interaction. Its text holds the interaction, the
// status, the OperationOutcome's issue codes and element paths and its
// diagnostics scrubbed of values (Scrub) — never a body or a value sent.
type Error struct {
	Op     string // e.g. "conditional create Patient"
	Status int    // 0 when no response arrived
	Issues []string
	// Diagnostics are the OperationOutcome's texts, values scrubbed.
	Diagnostics []string
	RetryAfter  time.Duration
	// Conditional marks a conditional create or update (its 412 means
	// duplicates, not a stale version).
	Conditional bool
	Err         error // transport error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("fhir ")
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if len(e.Issues) > 0 {
		b.WriteString(" [")
		b.WriteString(strings.Join(e.Issues, "; "))
		b.WriteString("]")
	}
	if len(e.Diagnostics) > 0 {
		b.WriteString(" diagnostics: ")
		b.WriteString(strings.Join(e.Diagnostics, " | "))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Classify decides what an error means: the retry classification table of
// fhir.md §1, in this one place. attempt is the job's attempt number (a 500
// is retried a few times, then permanent).
func Classify(err error, attempt int) Class {
	var cfe *ConflictError
	if errors.As(err, &cfe) {
		return ClassPermanent
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ClassPermanent
	}
	var ie *IdentityError
	if errors.As(err, &ie) {
		return ClassPermanent
	}
	var ue *UndeclaredError
	if errors.As(err, &ue) {
		return ClassPermanent
	}
	var oe *OriginError
	if errors.As(err, &oe) {
		return ClassPermanent
	}
	var te *smart.TokenError
	if errors.As(err, &te) {
		if te.Status == http.StatusTooManyRequests || te.Status >= 500 || te.Status == 0 {
			return ClassRetryable
		}
		return ClassAuth
	}
	var fe *Error
	if !errors.As(err, &fe) {
		return ClassRetryable
	}
	switch s := fe.Status; {
	case s == 0:
		return ClassRetryable
	case s == http.StatusTooManyRequests:
		return ClassThrottled
	case s == http.StatusPreconditionFailed && fe.Conditional:
		return ClassDuplicate
	case s == http.StatusPreconditionFailed || s == http.StatusConflict:
		return ClassStale
	case s == http.StatusUnauthorized:
		return ClassAuth
	case s == http.StatusInternalServerError:
		if attempt >= 4 {
			return ClassPermanent
		}
		return ClassRetryable
	case s >= 500:
		return ClassRetryable
	case s == http.StatusRequestTimeout:
		return ClassRetryable
	default:
		return ClassPermanent
	}
}

// DestinationOutcome tells the resilience layer whether an error means the
// endpoint is failing: transport errors, timeouts and 5xx do; answers about
// our request (4xx, 429) do not.
func DestinationOutcome(err error) resilience.Outcome {
	if err == nil {
		return resilience.Healthy
	}
	var fe *Error
	if errors.As(err, &fe) {
		if fe.Status == 0 || fe.Status >= 500 {
			return resilience.Failing
		}
		return resilience.Healthy
	}
	var te *smart.TokenError
	if errors.As(err, &te) {
		if te.Status == 0 || te.Status >= 500 {
			return resilience.Failing
		}
		return resilience.Healthy
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return resilience.Failing
	}
	return resilience.Healthy
}

// UndeclaredError: the endpoint's CapabilityStatement does not declare the
// interaction, so the client does not use it.
type UndeclaredError struct {
	Interaction  string
	ResourceType string
}

func (e *UndeclaredError) Error() string {
	if e.ResourceType == "" {
		return fmt.Sprintf("fhir: endpoint does not declare %s", e.Interaction)
	}
	return fmt.Sprintf("fhir: endpoint does not declare %s for %s", e.Interaction, e.ResourceType)
}

// OriginError: a next link left the endpoint's origin and was not followed.
type OriginError struct{ Origin string }

func (e *OriginError) Error() string {
	return "fhir: next link points outside the endpoint's origin (" + e.Origin + "), not followed"
}

// issueCodes extracts what an OperationOutcome may safely say: severity,
// issue code, coded details and the element paths. details.text and
// diagnostics are left out: servers echo submitted values in them.
func issueCodes(body []byte) []string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity string `json:"severity"`
			Code     string `json:"code"`
			Details  struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
			} `json:"details"`
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return nil
	}
	var out []string
	for _, is := range oo.Issue {
		if len(out) >= 10 {
			break
		}
		s := safeToken(is.Severity) + "/" + safeToken(is.Code)
		for _, c := range is.Details.Coding {
			s += " " + safeToken(c.Code)
		}
		var exprs []string
		for _, e := range is.Expression {
			if p := safePath(e); p != "" {
				exprs = append(exprs, p)
			}
		}
		if len(exprs) > 0 {
			s += " at " + strings.Join(exprs, ",")
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// safeToken keeps a code only if it looks like one.
func safeToken(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return "?"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return "?"
		}
	}
	return s
}

// safePath keeps a FHIRPath location made of element names and indexes.
func safePath(s string) string {
	if len(s) > 120 {
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '[' || r == ']' || r == '_') {
			return ""
		}
	}
	return s
}
