package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	twclient "github.com/twilio/twilio-go/client"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// testNumber must never appear in an error text.
const testNumber = "+15558675309"

func TestClassify(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// apiErr is what twilio-go returns for a decoded error body. Twilio's
	// messages quote the number; classify must not.
	apiErr := func(status, code int) error {
		return &twclient.TwilioRestError{
			Status: status, Code: code,
			Message:  fmt.Sprintf("The 'To' number %s is not valid.", testNumber),
			Details:  map[string]any{"to": testNumber},
			MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		}
	}
	// netErr is what http.Client returns without a response: the URL of a
	// list request holds the recipient's number.
	netErr := func(cause error) error {
		return &url.Error{Op: "Get", URL: "https://api.twilio.com/2010-04-01/Accounts/ACtest/Messages.json?To=" + url.QueryEscape(testNumber), Err: cause}
	}
	refused := netErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	undecodable := fmt.Errorf("error decoding the response for an HTTP error code: 502: %w", errors.New("invalid character '<' looking for beginning of value"))
	garbage := errors.New("invalid character 'g' looking for beginning of value")

	notCalled := seen{}
	notWritten := seen{called: true}
	written := seen{called: true, wrote: true}
	status := func(code int, retryAfter string) seen {
		return seen{called: true, wrote: true, status: code, retryAfter: retryAfter}
	}

	tests := []struct {
		name       string
		idempotent bool
		err        error
		seen       seen
		class      sms.Class
		reason     string
		code       string
		retryAfter time.Duration
		undecoded  bool // the error wraps ErrUndecodable
	}{
		// Before any request.
		{name: "SDKRejectsCredentials", err: &twclient.TwilioRestError{Status: 400, Code: 21222}, seen: notCalled, class: sms.ClassPermanent, code: "21222"},
		{name: "RequestNotBuilt", err: errors.New("parse error"), seen: notCalled, class: sms.ClassPermanent},

		// No response.
		{name: "RefusedBeforeWrite", err: refused, seen: notWritten, class: sms.ClassRetryable},
		{name: "CancelledBeforeWrite", err: netErr(context.Canceled), seen: notWritten, class: sms.ClassRetryable},
		{name: "TimeoutAfterWrite", err: netErr(context.DeadlineExceeded), seen: written, class: sms.ClassAmbiguous},
		{name: "CancelledAfterWrite", err: netErr(context.Canceled), seen: written, class: sms.ClassAmbiguous},
		{name: "ResetAfterWrite", err: netErr(syscall.ECONNRESET), seen: written, class: sms.ClassAmbiguous},
		{name: "ReadTimeoutAfterWrite", idempotent: true, err: netErr(context.DeadlineExceeded), seen: written, class: sms.ClassRetryable},

		// 5xx, whatever the body.
		{name: "500JSON", err: apiErr(500, 20500), seen: status(500, ""), class: sms.ClassAmbiguous, code: "20500"},
		{name: "503WithThrottleCode", err: apiErr(503, 30001), seen: status(503, ""), class: sms.ClassAmbiguous, code: "30001"},
		{name: "502HTML", err: undecodable, seen: status(502, ""), class: sms.ClassAmbiguous, undecoded: true},
		{name: "500OnRead", idempotent: true, err: apiErr(500, 20500), seen: status(500, ""), class: sms.ClassRetryable, code: "20500"},

		// Throttling.
		{name: "429Seconds", err: apiErr(429, 20429), seen: status(429, "7"), class: sms.ClassThrottled, code: "20429", retryAfter: 7 * time.Second},
		{name: "429HTTPDate", err: apiErr(429, 20429), seen: status(429, now.Add(90*time.Second).Format(http.TimeFormat)), class: sms.ClassThrottled, code: "20429", retryAfter: 90 * time.Second},
		{name: "429NoHeader", err: apiErr(429, 20429), seen: status(429, ""), class: sms.ClassThrottled, code: "20429", retryAfter: time.Second},
		{name: "429Garbage", err: apiErr(429, 20429), seen: status(429, "soon"), class: sms.ClassThrottled, code: "20429", retryAfter: time.Second},
		{name: "429Zero", err: apiErr(429, 20429), seen: status(429, "0"), class: sms.ClassThrottled, code: "20429", retryAfter: time.Second},
		{name: "429PastDate", err: apiErr(429, 20429), seen: status(429, now.Add(-time.Hour).Format(http.TimeFormat)), class: sms.ClassThrottled, code: "20429", retryAfter: time.Second},
		{name: "429Capped", err: apiErr(429, 20429), seen: status(429, "86400"), class: sms.ClassThrottled, code: "20429", retryAfter: time.Hour},
		{name: "429CappedDate", err: apiErr(429, 20429), seen: status(429, now.Add(48*time.Hour).Format(http.TimeFormat)), class: sms.ClassThrottled, code: "20429", retryAfter: time.Hour},
		{name: "429HTML", err: undecodable, seen: status(429, "3"), class: sms.ClassThrottled, retryAfter: 3 * time.Second, undecoded: true},
		{name: "Code20429", err: apiErr(400, 20429), seen: status(400, ""), class: sms.ClassThrottled, code: "20429", retryAfter: time.Second},
		{name: "QueueFull21611", err: apiErr(400, 21611), seen: status(400, ""), class: sms.ClassThrottled, code: "21611", retryAfter: time.Minute},
		{name: "QueueOverflow30001", err: apiErr(400, 30001), seen: status(400, ""), class: sms.ClassThrottled, code: "30001", retryAfter: time.Minute},
		{name: "QueueFullRetryAfter", err: apiErr(400, 21611), seen: status(400, "5"), class: sms.ClassThrottled, code: "21611", retryAfter: 5 * time.Second},

		// The recipient.
		{name: "InvalidTo21211", err: apiErr(400, 21211), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21211"},
		{name: "NotMobile21614", err: apiErr(400, 21614), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21614"},
		{name: "Landline21635", err: apiErr(400, 21635), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21635"},
		{name: "UnknownHandset30005", err: apiErr(400, 30005), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "30005"},
		{name: "Landline30006", err: apiErr(400, 30006), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "30006"},
		{name: "Unroutable21612", err: apiErr(400, 21612), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonUnreachable, code: "21612"},
		{name: "OptedOut21610", err: apiErr(400, 21610), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonOptedOut, code: "21610"},
		{name: "Unreachable30003", err: apiErr(400, 30003), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonUnreachable, code: "30003"},
		{name: "Blocked30004", err: apiErr(400, 30004), seen: status(400, ""), class: sms.ClassRecipient, reason: sms.ReasonUnreachable, code: "30004"},

		// Our own.
		{name: "Auth20003", err: apiErr(401, 20003), seen: status(401, ""), class: sms.ClassPermanent, code: "20003"},
		{name: "Forbidden", err: apiErr(403, 20003), seen: status(403, ""), class: sms.ClassPermanent, code: "20003"},
		{name: "ForbiddenHTML", err: undecodable, seen: status(403, ""), class: sms.ClassPermanent, undecoded: true},
		{name: "Region21408", err: apiErr(400, 21408), seen: status(400, ""), class: sms.ClassPermanent, code: "21408"},
		{name: "BodyMissing21602", err: apiErr(400, 21602), seen: status(400, ""), class: sms.ClassPermanent, code: "21602"},
		{name: "BodyTooLong21617", err: apiErr(400, 21617), seen: status(400, ""), class: sms.ClassPermanent, code: "21617"},
		{name: "BadFrom21606", err: apiErr(400, 21606), seen: status(400, ""), class: sms.ClassPermanent, code: "21606"},
		{name: "BadFrom21659", err: apiErr(400, 21659), seen: status(400, ""), class: sms.ClassPermanent, code: "21659"},
		{name: "Unverified21608", err: apiErr(400, 21608), seen: status(400, ""), class: sms.ClassPermanent, code: "21608"},
		{name: "Suspended30002", err: apiErr(400, 30002), seen: status(400, ""), class: sms.ClassPermanent, code: "30002"},
		{name: "Filtered30007", err: apiErr(400, 30007), seen: status(400, ""), class: sms.ClassPermanent, code: "30007"},
		{name: "TollFree30032", err: apiErr(400, 30032), seen: status(400, ""), class: sms.ClassPermanent, code: "30032"},
		{name: "Unregistered30034", err: apiErr(400, 30034), seen: status(400, ""), class: sms.ClassPermanent, code: "30034"},
		{name: "UnknownCode", err: apiErr(400, 29999), seen: status(400, ""), class: sms.ClassPermanent, code: "29999"},
		{name: "NotFound", err: apiErr(404, 20404), seen: status(404, ""), class: sms.ClassPermanent, code: "20404"},
		{name: "Redirect", err: errRedirect, seen: status(302, ""), class: sms.ClassPermanent},

		// A 2xx that could not be used.
		{name: "GarbageSuccess", err: garbage, seen: status(200, ""), class: sms.ClassAmbiguous, undecoded: true},
		{name: "GarbageSuccessOnRead", idempotent: true, err: garbage, seen: status(200, ""), class: sms.ClassRetryable, undecoded: true},
		{name: "NoSID", err: fmt.Errorf("%w: no message sid", ErrUndecodable), seen: status(201, ""), class: sms.ClassAmbiguous, undecoded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			se := classify(attempt{idempotent: tt.idempotent, err: tt.err, seen: tt.seen, now: now})
			require.Equal(t, Provider, se.Provider)
			require.Equal(t, tt.class, se.Class)
			require.Equal(t, tt.reason, se.Reason)
			require.Equal(t, tt.code, se.Code)
			require.Equal(t, tt.retryAfter, se.RetryAfter)
			require.Equal(t, tt.seen.status, se.HTTPStatus)
			require.Equal(t, tt.undecoded, errors.Is(se, ErrUndecodable))
			require.NotContains(t, se.Error(), strings.TrimPrefix(testNumber, "+"))
			require.NotContains(t, se.Error(), url.QueryEscape(testNumber))

			if tt.code != "" {
				var te *Error
				require.ErrorAs(t, se, &te)
				require.Equal(t, tt.code, fmt.Sprint(te.Code))
			}
		})
	}
}

func TestClassifyCodeRules(t *testing.T) {
	t.Parallel()

	// Every rule is complete for its class.
	for code, r := range codeRules {
		switch r.class {
		case sms.ClassRecipient:
			require.NotEmpty(t, r.reason, "code %d", code)
		case sms.ClassThrottled:
			require.Positive(t, r.wait, "code %d", code)
		case sms.ClassPermanent:
		default:
			t.Errorf("code %d: class %q does not belong in the table", code, r.class)
		}
	}
}
