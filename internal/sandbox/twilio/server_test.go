package twiliosandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/sms/smstest"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

const (
	accountSID = "ACtest"
	authToken  = "authtoken"
	fromNumber = "+15005550006"
	toNumber   = "+15558675309"
)

type testBundle struct {
	sandbox *twiliosandbox.Server
	server  *httptest.Server
	client  *twilio.Client
}

// setup starts a sandbox and an internal/twilio Client (the real SDK)
// pointing at it.
func setup(t *testing.T, cfg twiliosandbox.Config, mutate ...func(*twilio.Config)) *testBundle {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID, cfg.AuthToken = accountSID, authToken
	}
	sb := twiliosandbox.New(cfg, nil)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)

	tc := twilio.Config{
		AccountSID:     accountSID,
		AuthToken:      authToken,
		FromNumber:     fromNumber,
		APIBaseURL:     srv.URL,
		RequestTimeout: 5 * time.Second,
		ValidityPeriod: time.Hour,
	}
	for _, m := range mutate {
		m(&tc)
	}
	c, err := twilio.New(tc, nil)
	require.NoError(t, err)
	return &testBundle{sandbox: sb, server: srv, client: c}
}

// run runs the sandbox's callback loop for the test's duration.
func run(t *testing.T, sb *twiliosandbox.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func outbound(body string) sms.Outbound {
	return sms.Outbound{MessageID: 7, To: toNumber, Body: body}
}

func sendError(t *testing.T, err error) *sms.SendError {
	t.Helper()
	var se *sms.SendError
	require.ErrorAs(t, err, &se)
	return se
}

// rewrite points twilio-go's hard-coded API URL at the sandbox.
type rewrite struct{ target *url.URL }

func (rw rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rw.target.Scheme, rw.target.Host, ""
	return http.DefaultTransport.RoundTrip(r)
}

// sdk returns twilio-go's v2010 API service pointing at the sandbox, for
// calls internal/twilio does not make.
func sdk(t *testing.T, b *testBundle) *twapi.ApiService {
	t.Helper()
	u, err := url.Parse(b.server.URL)
	require.NoError(t, err)
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(accountSID, authToken),
		HTTPClient:  &http.Client{Transport: rewrite{target: u}, Timeout: 5 * time.Second},
	}
	c.SetAccountSid(accountSID)
	return twapi.NewApiServiceWithClient(c)
}

func TestSend(t *testing.T) {
	t.Parallel()

	t.Run("AcceptsAndStores", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})

		m := outbound("Your appointment is tomorrow at 9:00.")
		m.StatusCallbackURL = "http://127.0.0.1:1/webhooks/twilio/status?m=7"
		m.ValidityPeriod = 10 * time.Minute
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)
		require.Regexp(t, `^SM[0-9a-f]{32}$`, acc.ProviderMessageID)
		require.Equal(t, "queued", acc.Status)
		require.Equal(t, 1, acc.Segments)

		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)
		got := msgs[0]
		require.Equal(t, acc.ProviderMessageID, got.SID)
		require.Equal(t, toNumber, got.To)
		require.Equal(t, fromNumber, got.From)
		require.Equal(t, m.Body, got.Body)
		require.Equal(t, m.StatusCallbackURL, got.StatusCallback)
		require.Equal(t, 600, got.ValidityPeriod)
		require.Equal(t, "queued", got.Status)
		require.False(t, got.CreatedAt.IsZero())
		require.True(t, got.SentAt.IsZero())
		require.Equal(t, 1, b.sandbox.CreateCalls())
	})

	t.Run("CountsSegments", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})

		acc, err := b.client.Send(context.Background(), outbound(strings.Repeat("a", 161)))
		require.NoError(t, err)
		require.Equal(t, 2, acc.Segments)
		acc, err = b.client.Send(context.Background(), outbound(strings.Repeat("é", 80)))
		require.NoError(t, err)
		require.Equal(t, 1, acc.Segments, "é is GSM-7")
		acc, err = b.client.Send(context.Background(), outbound(strings.Repeat("ą", 71)))
		require.NoError(t, err)
		require.Equal(t, 2, acc.Segments, "ą needs UCS-2")
	})

	t.Run("MessagingService", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{}, func(c *twilio.Config) {
			c.FromNumber, c.MessagingServiceSID = "", "MG0123456789abcdef0123456789abcdef"
		})

		acc, err := b.client.Send(context.Background(), outbound("hello"))
		require.NoError(t, err)
		require.Equal(t, "accepted", acc.Status)
		require.Equal(t, 0, acc.Segments)
		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)
		require.Equal(t, "MG0123456789abcdef0123456789abcdef", msgs[0].MessagingServiceSID)
		require.Empty(t, msgs[0].From)

		found, err := smstest.FindOne(b.client, outbound("hello"), time.Now().Add(-time.Minute))
		require.NoError(t, err)
		require.NotNil(t, found)
		require.Equal(t, acc.ProviderMessageID, found.ProviderMessageID)
	})

	t.Run("Rejects", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			m      sms.Outbound
			token  string
			class  sms.Class
			reason string
			code   string
			status int
		}{
			{name: "InvalidNumber", m: sms.Outbound{To: "12345", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21211", status: 400},
			{name: "MissingTo", m: sms.Outbound{Body: "hi"}, class: sms.ClassPermanent, code: "21604", status: 400},
			{name: "MissingBody", m: sms.Outbound{To: toNumber}, class: sms.ClassPermanent, code: "21602", status: 400},
			{name: "BodyTooLong", m: sms.Outbound{To: toNumber, Body: strings.Repeat("a", 1601)}, class: sms.ClassPermanent, code: "21617", status: 400},
			{name: "BadCallback", m: sms.Outbound{To: toNumber, Body: "hi", StatusCallbackURL: "not a url"}, class: sms.ClassPermanent, code: "21609", status: 400},
			{name: "MagicInvalid", m: sms.Outbound{To: "+15005550001", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21211", status: 400},
			{name: "MagicUnroutable", m: sms.Outbound{To: "+15005550002", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonUnreachable, code: "21612", status: 400},
			{name: "MagicNoPermission", m: sms.Outbound{To: "+15005550003", Body: "hi"}, class: sms.ClassPermanent, code: "21408", status: 400},
			{name: "MagicOptedOut", m: sms.Outbound{To: "+15005550004", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonOptedOut, code: "21610", status: 400},
			{name: "MagicNotMobile", m: sms.Outbound{To: "+15005550009", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21614", status: 400},
			{name: "BadCredentials", m: outbound("hi"), token: "wrongtoken", class: sms.ClassPermanent, code: "20003", status: 401},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, twiliosandbox.Config{}, func(c *twilio.Config) {
					if tt.token != "" {
						c.AuthToken = tt.token
					}
				})

				_, err := b.client.Send(context.Background(), tt.m)
				se := sendError(t, err)
				require.Equal(t, tt.class, se.Class)
				require.Equal(t, tt.reason, se.Reason)
				require.Equal(t, tt.code, se.Code)
				require.Equal(t, tt.status, se.HTTPStatus)
				require.Empty(t, b.sandbox.Messages())
			})
		}
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()

	since := func() time.Time { return time.Now().Add(-time.Minute) }

	t.Run("Throttled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 429, RetryAfter: "7"})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassThrottled, se.Class)
		require.Equal(t, "20429", se.Code)
		require.Equal(t, 7*time.Second, se.RetryAfter)
		require.Empty(t, b.sandbox.Messages())
	})

	t.Run("BadGatewayHTML", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 502, Body: "<html><body>502 Bad Gateway</body></html>"})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Equal(t, 502, se.HTTPStatus)
		require.ErrorIs(t, err, twilio.ErrUndecodable)

		found, err := smstest.FindOne(b.client, outbound("hi"), since())
		require.NoError(t, err)
		require.Nil(t, found, "a proxy error stored nothing")
	})

	t.Run("AcceptThenFailIsFoundByReconciliation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		b.sandbox.InjectFaults(twiliosandbox.Fault{AcceptThenFail: true})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Equal(t, 500, se.HTTPStatus)
		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)

		found, err := smstest.FindOne(b.client, outbound("hi"), since())
		require.NoError(t, err)
		require.NotNil(t, found)
		require.Equal(t, msgs[0].SID, found.ProviderMessageID)
		require.Equal(t, 1, b.sandbox.ListCalls())

		other, err := smstest.FindOne(b.client, outbound("hi!"), since())
		require.NoError(t, err)
		require.Nil(t, other)
	})

	t.Run("HangIsFoundByReconciliation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{}, func(c *twilio.Config) { c.RequestTimeout = 100 * time.Millisecond })
		b.sandbox.InjectFaults(twiliosandbox.Fault{Hang: time.Hour})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Zero(t, se.HTTPStatus)

		found, err := smstest.FindOne(b.client, outbound("hi"), since())
		require.NoError(t, err)
		require.NotNil(t, found)
		require.Equal(t, b.sandbox.Messages()[0].SID, found.ProviderMessageID)
	})

	t.Run("DropConnectionStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		b.sandbox.InjectFaults(twiliosandbox.Fault{DropConnection: true})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Empty(t, b.sandbox.Messages())

		found, err := smstest.FindOne(b.client, outbound("hi"), since())
		require.NoError(t, err)
		require.Nil(t, found)
	})

	t.Run("ConsumedInOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		b.sandbox.InjectFaults(
			twiliosandbox.Fault{Status: 503},
			twiliosandbox.Fault{},
			twiliosandbox.Fault{Status: 400, Code: 21610},
		)

		var classes []sms.Class
		for range 4 {
			_, err := b.client.Send(context.Background(), outbound("hi"))
			if err == nil {
				classes = append(classes, "ok")
				continue
			}
			classes = append(classes, sendError(t, err).Class)
		}
		require.Equal(t, []sms.Class{sms.ClassAmbiguous, "ok", sms.ClassRecipient, "ok"}, classes)
		require.Equal(t, 4, b.sandbox.CreateCalls())
		require.Len(t, b.sandbox.Messages(), 2)
	})
}

func TestListAndFetch(t *testing.T) {
	t.Parallel()

	t.Run("PagesNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		var sids []string
		for i := range 5 {
			acc, err := b.client.Send(context.Background(), outbound(fmt.Sprintf("message %d", i)))
			require.NoError(t, err)
			sids = append([]string{acc.ProviderMessageID}, sids...)
		}
		_, err := b.client.Send(context.Background(), sms.Outbound{To: "+15550000000", Body: "someone else"})
		require.NoError(t, err)

		p := &twapi.ListMessageParams{}
		p.SetTo(toNumber).SetFrom(fromNumber).SetPageSize(2).SetLimit(10)
		msgs, err := sdk(t, b).ListMessage(p)
		require.NoError(t, err)
		var got []string
		for _, m := range msgs {
			got = append(got, *m.Sid)
			require.Equal(t, toNumber, *m.To)
			require.Equal(t, "outbound-api", *m.Direction)
			require.Equal(t, accountSID, *m.AccountSid)
		}
		require.Equal(t, sids, got)
		require.Equal(t, 3, b.sandbox.ListCalls())
	})

	t.Run("DateSentFilters", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{CallbackDelay: time.Millisecond})
		acc, err := b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)

		list := func(after time.Time) int {
			p := &twapi.ListMessageParams{}
			p.SetTo(toNumber).SetDateSentAfter(after)
			msgs, err := sdk(t, b).ListMessage(p)
			require.NoError(t, err)
			return len(msgs)
		}
		hourAgo := time.Now().Add(-time.Hour)
		require.Zero(t, list(hourAgo), "a queued message has no date_sent")

		run(t, b.sandbox)
		require.Eventually(t, func() bool {
			a, err := b.client.Fetch(context.Background(), acc.ProviderMessageID)
			return err == nil && a.Status == "delivered"
		}, 10*time.Second, 5*time.Millisecond)

		require.Equal(t, 1, list(hourAgo))
		require.Zero(t, list(time.Now().Add(time.Hour)))

		p := &twapi.ListMessageParams{}
		p.SetDateSentBefore(hourAgo)
		msgs, err := sdk(t, b).ListMessage(p)
		require.NoError(t, err)
		require.Empty(t, msgs)
	})

	t.Run("Fetch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})
		acc, err := b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)

		got, err := b.client.Fetch(context.Background(), acc.ProviderMessageID)
		require.NoError(t, err)
		require.Equal(t, &acc, got)

		missing, err := b.client.Fetch(context.Background(), "SM00000000000000000000000000000000")
		require.NoError(t, err)
		require.Nil(t, missing)
		require.Equal(t, 2, b.sandbox.FetchCalls())
	})

	t.Run("ErrorShapes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{})

		do := func(method, path, user, pass string) (int, map[string]any) {
			req, err := http.NewRequest(method, b.server.URL+path, nil)
			require.NoError(t, err)
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			var body map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			return resp.StatusCode, body
		}
		status, body := do(http.MethodGet, "/2010-04-01/Accounts/ACtest/Messages.json", "", "")
		require.Equal(t, 401, status)
		require.EqualValues(t, 20003, body["code"])
		require.EqualValues(t, 401, body["status"])
		require.Equal(t, "https://www.twilio.com/docs/errors/20003", body["more_info"])

		status, body = do(http.MethodGet, "/2010-04-01/Accounts/ACother/Messages.json", accountSID, authToken)
		require.Equal(t, 404, status)
		require.EqualValues(t, 20404, body["code"])

		status, body = do(http.MethodGet, "/2010-04-01/Accounts/ACtest/Messages/SMnope.json", accountSID, authToken)
		require.Equal(t, 404, status)
		require.EqualValues(t, 20404, body["code"])

		status, body = do(http.MethodGet, "/2010-04-01/Accounts/ACtest/Messages.json?DateSent%3E=yesterday", accountSID, authToken)
		require.Equal(t, 400, status)
		require.EqualValues(t, 20001, body["code"])

		status, body = do(http.MethodGet, "/2010-04-01/Accounts/ACtest/Messages.json", accountSID, authToken)
		require.Equal(t, 200, status)
		require.Equal(t, []any{}, body["messages"])
		require.Nil(t, body["next_page_uri"])
		require.EqualValues(t, 50, body["page_size"])
	})
}

// callbackSink is a status-callback receiver: it records what arrives.
type callbackSink struct {
	*httptest.Server
	got chan callback
}

type callback struct {
	url       string
	form      url.Values
	signature string
}

func newCallbackSink(t *testing.T) *callbackSink {
	t.Helper()
	s := &callbackSink{got: make(chan callback, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(raw))
		s.got <- callback{url: "http://" + r.Host + r.URL.RequestURI(), form: form, signature: r.Header.Get("X-Twilio-Signature")}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *callbackSink) next(t *testing.T) callback {
	t.Helper()
	select {
	case c := <-s.got:
		return c
	case <-time.After(10 * time.Second): // a deadlock guard, not a timing assertion
		t.Fatal("no status callback arrived")
		return callback{}
	}
}

func firstValues(form url.Values) map[string]string {
	out := make(map[string]string, len(form))
	for k, v := range form {
		out[k] = v[0]
	}
	return out
}

func TestCallbacks(t *testing.T) {
	t.Parallel()

	t.Run("SignedSentThenDelivered", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{CallbackDelay: time.Millisecond})
		sink := newCallbackSink(t)
		run(t, b.sandbox)

		m := outbound("hi")
		m.StatusCallbackURL = sink.URL + "/webhooks/twilio/status?m=123"
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)

		validator := twclient.NewRequestValidator(authToken) // the real peer
		for _, status := range []string{"sent", "delivered"} {
			c := sink.next(t)
			require.Equal(t, m.StatusCallbackURL, c.url)
			require.Equal(t, status, c.form.Get("MessageStatus"))
			require.Equal(t, status, c.form.Get("SmsStatus"))
			require.Equal(t, acc.ProviderMessageID, c.form.Get("MessageSid"))
			require.Equal(t, acc.ProviderMessageID, c.form.Get("SmsSid"))
			require.Equal(t, accountSID, c.form.Get("AccountSid"))
			require.Equal(t, fromNumber, c.form.Get("From"))
			require.Equal(t, toNumber, c.form.Get("To"))
			require.Equal(t, "2010-04-01", c.form.Get("ApiVersion"))
			require.NotContains(t, c.form, "ErrorCode")

			require.True(t, validator.Validate(c.url, firstValues(c.form), c.signature))
			require.True(t, b.client.ValidateWebhook(c.url, c.form, c.signature))
			require.Equal(t, twiliosandbox.Sign(authToken, c.url, c.form), c.signature)

			tampered := firstValues(c.form)
			tampered["MessageStatus"] = "failed"
			require.False(t, validator.Validate(c.url, tampered, c.signature))
			require.False(t, validator.Validate(strings.Replace(c.url, "m=123", "m=124", 1), firstValues(c.form), c.signature))
			other := twclient.NewRequestValidator("othertoken")
			require.False(t, other.Validate(c.url, firstValues(c.form), c.signature))
		}
		require.Eventually(t, func() bool { return b.sandbox.Messages()[0].Status == "delivered" }, 10*time.Second, time.Millisecond)
		require.False(t, b.sandbox.Messages()[0].SentAt.IsZero())
	})

	t.Run("Failures", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{CallbackDelay: time.Millisecond, FailureRate: 1, Seed: 3})
		sink := newCallbackSink(t)
		run(t, b.sandbox)

		m := outbound("hi")
		m.StatusCallbackURL = sink.URL + "/status"
		seen := map[string]bool{}
		for range 20 {
			_, err := b.client.Send(context.Background(), m)
			require.NoError(t, err)
		}
		for range 40 {
			c := sink.next(t)
			switch status := c.form.Get("MessageStatus"); status {
			case "sent":
				require.NotContains(t, c.form, "ErrorCode")
			case "undelivered":
				require.Equal(t, "30003", c.form.Get("ErrorCode"))
				seen[status] = true
			case "failed":
				require.Equal(t, "30006", c.form.Get("ErrorCode"))
				seen[status] = true
			default:
				t.Fatalf("unexpected status %q", status)
			}
		}
		require.Equal(t, map[string]bool{"undelivered": true, "failed": true}, seen)
	})

	t.Run("SameSeedSameFates", func(t *testing.T) {
		t.Parallel()
		fates := func() []string {
			b := setup(t, twiliosandbox.Config{CallbackDelay: time.Millisecond, FailureRate: 0.5, Seed: 42})
			run(t, b.sandbox)
			for i := range 20 {
				_, err := b.client.Send(context.Background(), outbound(fmt.Sprint(i)))
				require.NoError(t, err)
			}
			var out []string
			require.Eventually(t, func() bool {
				out = out[:0]
				for _, m := range b.sandbox.Messages() {
					if m.Status == "queued" || m.Status == "sent" {
						return false
					}
					out = append(out, m.Status)
				}
				return true
			}, 10*time.Second, 5*time.Millisecond)
			return out
		}
		first := fates()
		require.Equal(t, first, fates())
		require.Contains(t, first, "delivered")
	})

	t.Run("NoCallbackURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, twiliosandbox.Config{CallbackDelay: time.Millisecond})
		run(t, b.sandbox)

		acc, err := b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			got, err := b.client.Fetch(context.Background(), acc.ProviderMessageID)
			return err == nil && got.Status == "delivered"
		}, 10*time.Second, 5*time.Millisecond)
	})

	t.Run("RunStopsWithItsContext", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		hits := 0
		block := make(chan struct{})
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits++
			mu.Unlock()
			select { // a callback endpoint that never answers
			case <-r.Context().Done():
			case <-block:
			}
		}))
		t.Cleanup(sink.Close)
		t.Cleanup(func() { close(block) })

		b := setup(t, twiliosandbox.Config{CallbackDelay: time.Millisecond})
		m := outbound("hi")
		m.StatusCallbackURL = sink.URL
		_, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.sandbox.Run(ctx) }()
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return hits == 1
		}, 10*time.Second, time.Millisecond)
		cancel()
		require.NoError(t, <-done) // returns although the callback hangs
		require.Equal(t, "sent", b.sandbox.Messages()[0].Status)
	})
}

func TestSign(t *testing.T) {
	t.Parallel()

	// A published vector: twilio-go's own validator tests use it.
	params := url.Values{
		"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"},
		"Caller": {"+14158675309"}, "From": {"+14158675309"},
		"ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
	}
	require.Equal(t, "vOEb5UThFn24KEfnOFLQY2AE5FY=", twiliosandbox.Sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params))
	require.NotEqual(t, "vOEb5UThFn24KEfnOFLQY2AE5FY=", twiliosandbox.Sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", params))
}
