package telnyx

import (
	"context"
	"encoding/json"
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

	"github.com/switchboard-health/switchboard/internal/sms"
)

// testNumber must never appear in an error text.
const testNumber = "+15558675309"

func TestClassify(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// body is Telnyx's error body; its detail quotes the number, as
	// Telnyx's do, and classify must not.
	type e struct{ code, pointer string }
	body := func(errs ...e) []byte {
		var list []map[string]any
		for _, x := range errs {
			m := map[string]any{"code": x.code, "title": "Some title", "detail": "The number " + testNumber + " is not valid."}
			if x.pointer != "" {
				m["source"] = map[string]string{"pointer": x.pointer}
			}
			list = append(list, m)
		}
		b, _ := json.Marshal(map[string]any{"errors": list})
		return b
	}
	// netErr is what http.Client returns without a response: the URL of a
	// detail-record search holds the recipient's number.
	netErr := func(cause error) error {
		return &url.Error{Op: "Get", URL: "https://api.telnyx.com/v2/detail_records?filter%5Bcld%5D=" + url.QueryEscape(testNumber), Err: cause}
	}
	refused := netErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	header := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	resp := func(status int, h http.Header, b []byte) exchange {
		if h == nil {
			h = http.Header{}
		}
		return exchange{built: true, wrote: true, status: status, header: h, body: b}
	}
	html := []byte("<html><body><h1>502 Bad Gateway</h1></body></html>")
	undecodable := fmt.Errorf("%w: invalid json at offset 1", ErrUndecodable)

	tests := []struct {
		name       string
		idempotent bool
		ex         exchange
		err        error // a 2xx's decoding error
		class      sms.Class
		reason     string
		code       string
		retryAfter time.Duration
		undecoded  bool // the error wraps ErrUndecodable
	}{
		// Before any request.
		{name: "NotBuilt", ex: exchange{err: errors.New("error encoding request")}, class: sms.ClassPermanent},

		// No response.
		{name: "RefusedBeforeWrite", ex: exchange{built: true, err: refused}, class: sms.ClassRetryable},
		{name: "CancelledBeforeWrite", ex: exchange{built: true, err: netErr(context.Canceled)}, class: sms.ClassRetryable},
		{name: "TimeoutAfterWrite", ex: exchange{built: true, wrote: true, err: netErr(context.DeadlineExceeded)}, class: sms.ClassAmbiguous},
		{name: "CancelledAfterWrite", ex: exchange{built: true, wrote: true, err: netErr(context.Canceled)}, class: sms.ClassAmbiguous},
		{name: "ResetAfterWrite", ex: exchange{built: true, wrote: true, err: netErr(syscall.ECONNRESET)}, class: sms.ClassAmbiguous},
		{name: "TimeoutAfterWriteOnRead", idempotent: true, ex: exchange{built: true, wrote: true, err: netErr(context.DeadlineExceeded)}, class: sms.ClassRetryable},

		// 5xx, whatever the body.
		{name: "500JSON", ex: resp(500, nil, body(e{code: "10007"})), class: sms.ClassAmbiguous, code: "10007"},
		{name: "503With10011", ex: resp(503, nil, body(e{code: "10011"})), class: sms.ClassAmbiguous, code: "10011"},
		{name: "502HTML", ex: resp(502, nil, html), class: sms.ClassAmbiguous, undecoded: true},
		{name: "504Empty", ex: resp(504, nil, nil), class: sms.ClassAmbiguous, undecoded: true},
		{name: "500OnRead", idempotent: true, ex: resp(500, nil, body(e{code: "10007"})), class: sms.ClassRetryable, code: "10007"},

		// Throttling: each header form, in order of precedence.
		{name: "429NoHeader", ex: resp(429, nil, body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Second},
		{name: "429RetryAfterMs", ex: resp(429, header("Retry-After-Ms", "1500"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 1500 * time.Millisecond},
		{name: "429RetryAfterMsWins", ex: resp(429, header("Retry-After-Ms", "250", "Retry-After", "9", "X-Ratelimit-Reset", "30"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 250 * time.Millisecond},
		{name: "429RetryAfterSeconds", ex: resp(429, header("Retry-After", "7"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 7 * time.Second},
		{name: "429RetryAfterWinsOverReset", ex: resp(429, header("Retry-After", "7", "X-Ratelimit-Reset", "30"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 7 * time.Second},
		{name: "429RetryAfterHTTPDate", ex: resp(429, header("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 90 * time.Second},
		{name: "429RateLimitResetSeconds", ex: resp(429, header("X-Ratelimit-Reset", "12"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 12 * time.Second},
		{name: "429RateLimitResetUnixTime", ex: resp(429, header("X-Ratelimit-Reset", fmt.Sprint(now.Add(40*time.Second).Unix())), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 40 * time.Second},
		{name: "429GarbageFallsThrough", ex: resp(429, header("Retry-After-Ms", "soon", "Retry-After", "later", "X-Ratelimit-Reset", "5"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 5 * time.Second},
		{name: "429ZeroFallsThrough", ex: resp(429, header("Retry-After-Ms", "0", "Retry-After", "0"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Second},
		{name: "429PastDate", ex: resp(429, header("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat)), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Second},
		{name: "429Capped", ex: resp(429, header("Retry-After", "86400"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Hour},
		{name: "429CappedMs", ex: resp(429, header("Retry-After-Ms", "1e12"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Hour},
		{name: "429HTML", ex: resp(429, header("Retry-After", "3"), html), class: sms.ClassThrottled, retryAfter: 3 * time.Second, undecoded: true},
		{name: "Code10011On400", ex: resp(400, nil, body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Second},
		{name: "Code10011Second", ex: resp(400, nil, body(e{code: "10015"}, e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: time.Second},
		{name: "UpstreamRateLimit40011", ex: resp(400, nil, body(e{code: "40011"})), class: sms.ClassThrottled, code: "40011", retryAfter: time.Minute},
		{name: "429OnRead", idempotent: true, ex: resp(429, header("Retry-After", "2"), body(e{code: "10011"})), class: sms.ClassThrottled, code: "10011", retryAfter: 2 * time.Second},

		// The recipient.
		{name: "InvalidNumber10002", ex: resp(400, nil, body(e{code: "10002", pointer: "/to"})), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10002"},
		{name: "InvalidNumberNoPointer", ex: resp(422, nil, body(e{code: "10002"})), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10002"},
		{name: "NotE164_10016", ex: resp(400, nil, body(e{code: "10016", pointer: "/to"})), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10016"},
		{name: "NotRoutable40001", ex: resp(400, nil, body(e{code: "40001"})), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "40001"},
		{name: "InvalidDestination40012", ex: resp(400, nil, body(e{code: "40012"})), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "40012"},
		{name: "OptedOut40300", ex: resp(409, nil, body(e{code: "40300"})), class: sms.ClassRecipient, reason: sms.ReasonOptedOut, code: "40300"},
		{name: "RecipientAfterUnknown", ex: resp(400, nil, body(e{code: "19999"}, e{code: "10002", pointer: "/to"})), class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10002"},

		// A recipient code about our own fields.
		{name: "InvalidFrom10002", ex: resp(400, nil, body(e{code: "10002", pointer: "/from"})), class: sms.ClassPermanent, code: "10002"},
		{name: "FromNotE164_10016", ex: resp(400, nil, body(e{code: "10016", pointer: "/from"})), class: sms.ClassPermanent, code: "10016"},

		// Telnyx's own failures on a 4xx.
		{name: "Unexpected10007", ex: resp(400, nil, body(e{code: "10007"})), class: sms.ClassAmbiguous, code: "10007"},
		{name: "Timeout10008", ex: resp(408, nil, body(e{code: "10008"})), class: sms.ClassAmbiguous, code: "10008"},
		{name: "Timeout10008OnRead", idempotent: true, ex: resp(408, nil, body(e{code: "10008"})), class: sms.ClassRetryable, code: "10008"},

		// Our own.
		{name: "Auth10009", ex: resp(401, nil, body(e{code: "10009"})), class: sms.ClassPermanent, code: "10009"},
		{name: "AuthHTML", ex: resp(401, nil, html), class: sms.ClassPermanent, undecoded: true},
		{name: "Forbidden10010", ex: resp(403, nil, body(e{code: "10010"})), class: sms.ClassPermanent, code: "10010"},
		{name: "InactiveSender10001", ex: resp(400, nil, body(e{code: "10001", pointer: "/from"})), class: sms.ClassPermanent, code: "10001"},
		{name: "InvalidURL10003", ex: resp(400, nil, body(e{code: "10003", pointer: "/webhook_url"})), class: sms.ClassPermanent, code: "10003"},
		{name: "Missing10004", ex: resp(400, nil, body(e{code: "10004", pointer: "/text"})), class: sms.ClassPermanent, code: "10004"},
		{name: "NotFound10005", ex: resp(404, nil, body(e{code: "10005"})), class: sms.ClassPermanent, code: "10005"},
		{name: "BadRequest10015", ex: resp(400, nil, body(e{code: "10015"})), class: sms.ClassPermanent, code: "10015"},
		{name: "SpamTemporary40002", ex: resp(400, nil, body(e{code: "40002"})), class: sms.ClassPermanent, code: "40002"},
		{name: "SpamPermanent40003", ex: resp(400, nil, body(e{code: "40003"})), class: sms.ClassPermanent, code: "40003"},
		{name: "InvalidBody40009", ex: resp(400, nil, body(e{code: "40009"})), class: sms.ClassPermanent, code: "40009"},
		{name: "UnknownCode", ex: resp(422, nil, body(e{code: "19999"})), class: sms.ClassPermanent, code: "19999"},
		{name: "Unknown4xxNoBody", ex: resp(418, nil, nil), class: sms.ClassPermanent, undecoded: true},
		{name: "NumericCode", ex: resp(401, nil, []byte(`{"errors":[{"code":10009,"title":"Authentication failed"}]}`)), class: sms.ClassPermanent, code: "10009"},
		{name: "Redirect", ex: resp(302, header("Location", "https://example.com/"), nil), class: sms.ClassPermanent},

		// A 2xx that could not be used.
		{name: "GarbageSuccess", ex: resp(200, nil, []byte("garbage{")), err: undecodable, class: sms.ClassAmbiguous, undecoded: true},
		{name: "GarbageSuccessOnRead", idempotent: true, ex: resp(200, nil, []byte("garbage{")), err: undecodable, class: sms.ClassRetryable, undecoded: true},
		{name: "SuccessBodyCut", ex: exchange{built: true, wrote: true, status: 200, header: http.Header{}, err: syscall.ECONNRESET}, class: sms.ClassAmbiguous, undecoded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			se := classify(attempt{idempotent: tt.idempotent, ex: tt.ex, err: tt.err, now: now})
			require.Equal(t, Provider, se.Provider)
			require.Equal(t, tt.class, se.Class)
			require.Equal(t, tt.reason, se.Reason)
			require.Equal(t, tt.code, se.Code)
			require.Equal(t, tt.retryAfter, se.RetryAfter)
			require.Equal(t, tt.ex.status, se.HTTPStatus)
			require.Equal(t, tt.undecoded, errors.Is(se, ErrUndecodable))
			require.NotContains(t, se.Error(), strings.TrimPrefix(testNumber, "+"))
			require.NotContains(t, se.Error(), url.QueryEscape(testNumber))
			require.NotContains(t, se.Error(), "Some title")

			if tt.ex.status >= 300 {
				var te *Error
				require.ErrorAs(t, se, &te)
				require.Equal(t, tt.code, te.Code)
				require.Equal(t, tt.ex.status, te.Status)
				require.Equal(t, tt.retryAfter, te.RetryAfter)
			}
			if tt.ex.status >= 300 && tt.ex.status < 400 {
				require.ErrorIs(t, se, errRedirect)
			}
		})
	}
}

func TestClassifyKeepsCodesAndPointer(t *testing.T) {
	t.Parallel()

	ex := exchange{built: true, wrote: true, status: 400, header: http.Header{},
		body: []byte(`{"errors":[{"code":"10015","title":"Bad Request"},{"code":"10002","title":"Invalid phone number","source":{"pointer":"/to"}}]}`)}
	se := classify(attempt{ex: ex, now: time.Now()})
	var te *Error
	require.ErrorAs(t, se, &te)
	require.Equal(t, []string{"10015", "10002"}, te.Codes)
	// The first listed code decides: a malformed request is our bug, even
	// if the number is invalid too.
	require.Equal(t, sms.ClassPermanent, se.Class)
	require.Equal(t, "10015", te.Code)
	require.Empty(t, te.Pointer)

	ex.body = []byte(`{"errors":[{"code":"19999"},{"code":"10002","title":"Invalid phone number","source":{"pointer":"/to"}}]}`)
	se = classify(attempt{ex: ex, now: time.Now()})
	require.ErrorAs(t, se, &te)
	require.Equal(t, []string{"19999", "10002"}, te.Codes)
	require.Equal(t, "/to", te.Pointer)
	require.Equal(t, "telnyx recipient error (http 400) code 10002 reason invalid_number: telnyx api error 10002 (http 400) at /to", se.Error())
}

func TestClassifyCodeRules(t *testing.T) {
	t.Parallel()

	// Every rule is complete for its class.
	for code, r := range codeRules {
		require.Len(t, code, 5, "code %s", code)
		switch r.class {
		case sms.ClassRecipient:
			require.NotEmpty(t, r.reason, "code %s", code)
		case sms.ClassThrottled:
			require.Positive(t, r.wait, "code %s", code)
		case sms.ClassAmbiguous:
			require.True(t, r.lost, "code %s", code)
		case sms.ClassPermanent:
		default:
			t.Errorf("code %s: class %q does not belong in the table", code, r.class)
		}
	}
}

func TestThrottleWait(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{name: "None", header: http.Header{}, want: 5 * time.Second},
		{name: "FractionalSeconds", header: http.Header{"Retry-After": {"1.5"}}, want: 1500 * time.Millisecond},
		{name: "Spaces", header: http.Header{"Retry-After-Ms": {" 20 "}}, want: 20 * time.Millisecond},
		{name: "NegativeMs", header: http.Header{"Retry-After-Ms": {"-5"}, "Retry-After": {"2"}}, want: 2 * time.Second},
		{name: "NaN", header: http.Header{"Retry-After-Ms": {"NaN"}}, want: 5 * time.Second},
		{name: "Inf", header: http.Header{"Retry-After": {"+Inf"}}, want: 5 * time.Second},
		{name: "PastResetTime", header: http.Header{"X-Ratelimit-Reset": {fmt.Sprint(now.Add(-time.Minute).Unix())}}, want: 5 * time.Second},
		{name: "HugeReset", header: http.Header{"X-Ratelimit-Reset": {"999999999"}}, want: time.Hour},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, throttleWait(tt.header, now, 5*time.Second), tt.name)
	}
}
