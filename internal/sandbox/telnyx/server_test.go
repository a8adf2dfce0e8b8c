package telnyxsandbox_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/sms/smstest"
	"github.com/switchboard-health/switchboard/internal/telnyx"
)

const (
	apiKey     = "KEYsandbox0123456789"
	fromNumber = "+15005550006"
	toNumber   = "+15558675309"
)

type testBundle struct {
	sandbox *telnyxsandbox.Server
	server  *httptest.Server
	client  *telnyx.Client
}

// setup starts a sandbox and an internal/telnyx Client pointing at it.
func setup(t *testing.T, cfg telnyxsandbox.Config, mutate ...func(*telnyx.Config)) *testBundle {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = apiKey
	}
	sb := telnyxsandbox.New(cfg, nil)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)

	tc := telnyx.Config{
		APIKey:         apiKey,
		FromNumber:     fromNumber,
		PublicKey:      sb.PublicKeyBase64(),
		APIBaseURL:     srv.URL,
		RequestTimeout: 5 * time.Second,
		// The sandbox indexes detail records at once.
		DetailRecordLag: 0,
	}
	for _, m := range mutate {
		m(&tc)
	}
	c, err := telnyx.New(tc, nil)
	require.NoError(t, err)
	return &testBundle{sandbox: sb, server: srv, client: c}
}

// run runs the sandbox's webhook loop for the test's duration.
func run(t *testing.T, sb *telnyxsandbox.Server) {
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
	require.NotContains(t, se.Error(), strings.TrimPrefix(toNumber, "+"))
	return se
}

func since() time.Time { return time.Now().Add(-time.Minute) }

func TestSend(t *testing.T) {
	t.Parallel()

	t.Run("AcceptsAndStores", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})

		m := outbound("Your appointment is tomorrow at 9:00.")
		m.StatusCallbackURL = "http://127.0.0.1:1/webhooks/telnyx/status?m=7"
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)
		require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, acc.ProviderMessageID)
		require.Equal(t, "queued", acc.Status)
		require.Equal(t, 1, acc.Segments)

		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)
		got := msgs[0]
		require.Equal(t, acc.ProviderMessageID, got.ID)
		require.Equal(t, "outbound", got.Direction)
		require.Equal(t, toNumber, got.To)
		require.Equal(t, fromNumber, got.From)
		require.Empty(t, got.MessagingProfileID)
		require.Equal(t, m.Body, got.Text)
		require.Equal(t, "SMS", got.Type)
		require.Equal(t, m.StatusCallbackURL, got.WebhookURL)
		require.False(t, got.UseProfileWebhooks)
		require.Equal(t, "queued", got.Status)
		require.False(t, got.CreatedAt.IsZero())
		require.True(t, got.SentAt.IsZero())
		require.Equal(t, 1, b.sandbox.CreateCalls())
	})

	t.Run("CountsParts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})

		for _, tt := range []struct {
			body  string
			parts int
		}{
			{body: strings.Repeat("a", 160), parts: 1},
			{body: strings.Repeat("a", 161), parts: 2},
			{body: strings.Repeat("é", 80), parts: 1}, // é is GSM-7
			{body: strings.Repeat("€", 81), parts: 2}, // € takes two septets
			{body: strings.Repeat("ą", 70), parts: 1}, // UCS-2
			{body: strings.Repeat("ą", 71), parts: 2}, // UCS-2, concatenated
			{body: strings.Repeat("😀", 35), parts: 1}, // two UTF-16 units each
		} {
			acc, err := b.client.Send(context.Background(), outbound(tt.body))
			require.NoError(t, err)
			require.Equal(t, tt.parts, acc.Segments, "%d runes", len([]rune(tt.body)))
		}
	})

	t.Run("ProfileNumberPool", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{}, func(c *telnyx.Config) {
			c.FromNumber, c.MessagingProfileID = "", telnyxsandbox.ProfileID
		})

		acc, err := b.client.Send(context.Background(), outbound("hello"))
		require.NoError(t, err)
		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)
		require.Equal(t, telnyxsandbox.ProfileID, msgs[0].MessagingProfileID)
		require.Equal(t, telnyxsandbox.PoolNumber, msgs[0].From)

		found, err := smstest.FindOne(b.client, outbound("hello"), since())
		require.NoError(t, err)
		require.NotNil(t, found)
		require.Equal(t, acc.ProviderMessageID, found.ProviderMessageID)
	})

	t.Run("Rejects", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			m      sms.Outbound
			key    string
			class  sms.Class
			reason string
			code   string
			status int
		}{
			{name: "InvalidNumber", m: sms.Outbound{To: "+1234", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10002", status: 400},
			{name: "NotE164", m: sms.Outbound{To: "15558675309", Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10016", status: 400},
			{name: "MissingTo", m: sms.Outbound{Body: "hi"}, class: sms.ClassPermanent, code: "10004", status: 400},
			{name: "MissingText", m: sms.Outbound{To: toNumber}, class: sms.ClassPermanent, code: "10004", status: 400},
			{name: "BadWebhookURL", m: sms.Outbound{To: toNumber, Body: "hi", StatusCallbackURL: "not a url"}, class: sms.ClassPermanent, code: "10003", status: 400},
			{name: "MagicInvalid", m: sms.Outbound{To: telnyxsandbox.InvalidNumber, Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10002", status: 400},
			{name: "MagicOptedOut", m: sms.Outbound{To: telnyxsandbox.OptedOutNumber, Body: "hi"}, class: sms.ClassRecipient, reason: sms.ReasonOptedOut, code: "40300", status: 409},
			{name: "BadAPIKey", m: outbound("hi"), key: "KEYwrong", class: sms.ClassPermanent, code: "10009", status: 401},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, telnyxsandbox.Config{}, func(c *telnyx.Config) {
					if tt.key != "" {
						c.APIKey = tt.key
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

	t.Run("ThrottledEachHeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.InjectFaults(
			telnyxsandbox.Fault{Status: 429, RetryAfter: "7"},
			telnyxsandbox.Fault{Status: 429, Header: http.Header{"Retry-After-Ms": {"1500"}, "Retry-After": {"7"}}},
			telnyxsandbox.Fault{Status: 429, Header: http.Header{"X-Ratelimit-Reset": {"12"}}},
			telnyxsandbox.Fault{Status: 429},
		)

		var waits []time.Duration
		for range 4 {
			_, err := b.client.Send(context.Background(), outbound("hi"))
			se := sendError(t, err)
			require.Equal(t, sms.ClassThrottled, se.Class)
			require.Equal(t, "10011", se.Code)
			waits = append(waits, se.RetryAfter)
		}
		require.Equal(t, []time.Duration{7 * time.Second, 1500 * time.Millisecond, 12 * time.Second, time.Second}, waits)
		require.Empty(t, b.sandbox.Messages())
	})

	t.Run("BadGatewayHTML", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.InjectFaults(telnyxsandbox.Fault{Status: 502, Body: "<html><body>502 Bad Gateway</body></html>"})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Equal(t, 502, se.HTTPStatus)
		require.ErrorIs(t, err, telnyx.ErrUndecodable)

		found, err := smstest.FindOne(b.client, outbound("hi"), since())
		require.NoError(t, err)
		require.Nil(t, found, "a proxy error stored nothing")
	})

	t.Run("AcceptThenFailIsFoundByReconciliation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.InjectFaults(telnyxsandbox.Fault{AcceptThenFail: true})

		m := outbound("hi")
		m.StatusCallbackURL = "http://127.0.0.1:1/webhooks/telnyx/status?m=7"
		_, err := b.client.Send(context.Background(), m)
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Equal(t, 500, se.HTTPStatus)
		require.Equal(t, "10007", se.Code)
		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)

		found, err := smstest.FindOne(b.client, m, since())
		require.NoError(t, err)
		require.NotNil(t, found)
		require.Equal(t, msgs[0].ID, found.ProviderMessageID)
		require.Equal(t, "queued", found.Status)
		require.Equal(t, 1, b.sandbox.RecordCalls())
		require.Equal(t, 1, b.sandbox.FetchCalls())

		// The same patient, the same text, another Switchboard message.
		other := m
		other.StatusCallbackURL = "http://127.0.0.1:1/webhooks/telnyx/status?m=8"
		none, err := smstest.FindOne(b.client, other, since())
		require.NoError(t, err)
		require.Nil(t, none)

		plain := outbound("hi!")
		none, err = smstest.FindOne(b.client, plain, since())
		require.NoError(t, err)
		require.Nil(t, none)
	})

	t.Run("HangIsFoundByReconciliation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{}, func(c *telnyx.Config) { c.RequestTimeout = 250 * time.Millisecond })
		b.sandbox.InjectFaults(telnyxsandbox.Fault{Hang: time.Hour})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Zero(t, se.HTTPStatus)

		found, err := smstest.FindOne(b.client, outbound("hi"), since())
		require.NoError(t, err)
		require.NotNil(t, found)
		require.Equal(t, b.sandbox.Messages()[0].ID, found.ProviderMessageID)
	})

	t.Run("DropConnectionStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.InjectFaults(telnyxsandbox.Fault{DropConnection: true})

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
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.InjectFaults(
			telnyxsandbox.Fault{Status: 503},
			telnyxsandbox.Fault{},
			telnyxsandbox.Fault{Status: 409, Code: "40300"},
			telnyxsandbox.Fault{Status: 401, Code: "10009"},
		)

		var classes []sms.Class
		for range 5 {
			_, err := b.client.Send(context.Background(), outbound("hi"))
			if err == nil {
				classes = append(classes, "ok")
				continue
			}
			classes = append(classes, sendError(t, err).Class)
		}
		require.Equal(t, []sms.Class{sms.ClassAmbiguous, "ok", sms.ClassRecipient, sms.ClassPermanent, "ok"}, classes)
		require.Equal(t, 5, b.sandbox.CreateCalls())
		require.Len(t, b.sandbox.Messages(), 2)
	})
}

func TestChaos(t *testing.T) {
	t.Parallel()

	t.Run("Outage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.SetChaos(telnyxsandbox.Chaos{Outage: true})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Equal(t, 503, se.HTTPStatus)

		se = sendError(t, b.client.Probe(context.Background()))
		require.Equal(t, sms.ClassRetryable, se.Class, "a probe is a read")
		_, err = smstest.FindOne(b.client, outbound("hi"), since())
		require.Equal(t, sms.ClassRetryable, sendError(t, err).Class)
		require.EqualValues(t, 3, b.sandbox.Refused())
		require.Empty(t, b.sandbox.Messages())

		b.sandbox.SetChaos(telnyxsandbox.Chaos{})
		require.NoError(t, b.client.Probe(context.Background()))
		_, err = b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)
		require.EqualValues(t, 3, b.sandbox.Refused())
	})

	t.Run("ServerErrorShare", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{Seed: 5})
		b.sandbox.SetChaos(telnyxsandbox.Chaos{ServerErrorShare: 0.5})

		failed := 0
		for range 40 {
			if _, err := b.client.Send(context.Background(), outbound("hi")); err != nil {
				require.Equal(t, sms.ClassAmbiguous, sendError(t, err).Class)
				failed++
			}
		}
		require.EqualValues(t, failed, b.sandbox.Refused())
		require.Len(t, b.sandbox.Messages(), 40-failed)
		require.Positive(t, failed)
		require.Less(t, failed, 40)
	})

	t.Run("Throttle", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		b.sandbox.SetChaos(telnyxsandbox.Chaos{ThrottleShare: 1, RetryAfter: 4})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassThrottled, se.Class)
		require.Equal(t, 4*time.Second, se.RetryAfter)
		require.Equal(t, "10011", se.Code)
		require.EqualValues(t, 1, b.sandbox.Throttled())
		require.Zero(t, b.sandbox.CreateCalls(), "answered before the handler")
	})

	t.Run("LatencyBeyondTheTimeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{}, func(c *telnyx.Config) { c.RequestTimeout = 250 * time.Millisecond })
		b.sandbox.SetChaos(telnyxsandbox.Chaos{Latency: time.Hour})

		_, err := b.client.Send(context.Background(), outbound("hi"))
		require.Equal(t, sms.ClassAmbiguous, sendError(t, err).Class)
		require.Equal(t, sms.ClassRetryable, sendError(t, b.client.Probe(context.Background())).Class)
	})
}

func TestReads(t *testing.T) {
	t.Parallel()

	t.Run("Fetch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		acc, err := b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)

		got, err := b.client.Fetch(context.Background(), acc.ProviderMessageID)
		require.NoError(t, err)
		require.Equal(t, &acc, got)

		missing, err := b.client.Fetch(context.Background(), "00000000-0000-4000-8000-000000000000")
		require.NoError(t, err)
		require.Nil(t, missing)
		require.Equal(t, 2, b.sandbox.FetchCalls())
	})

	t.Run("Probe", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		require.NoError(t, b.client.Probe(context.Background()))
		require.Equal(t, 1, b.sandbox.ProfileCalls())

		bad := setup(t, telnyxsandbox.Config{}, func(c *telnyx.Config) { c.APIKey = "KEYwrong" })
		se := sendError(t, bad.client.Probe(context.Background()))
		require.Equal(t, sms.ClassPermanent, se.Class)
		require.Equal(t, "10009", se.Code)
	})

	t.Run("DetailRecords", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		var ids []string
		for i := range 3 {
			acc, err := b.client.Send(context.Background(), outbound(fmt.Sprintf("message %d", i)))
			require.NoError(t, err)
			ids = append(ids, acc.ProviderMessageID)
		}
		_, err := b.client.Send(context.Background(), sms.Outbound{To: "+15550000000", Body: "someone else"})
		require.NoError(t, err)

		get := func(query string, key string) (int, map[string]any) {
			req, err := http.NewRequest(http.MethodGet, b.server.URL+"/v2/detail_records?"+query, nil)
			require.NoError(t, err)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var body map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			return resp.StatusCode, body
		}
		uuids := func(body map[string]any) []string {
			var out []string
			for _, r := range body["data"].([]any) {
				rec := r.(map[string]any)
				require.Equal(t, "message_detail_record", rec["record_type"])
				out = append(out, rec["uuid"].(string))
			}
			return out
		}
		cld := "filter[record_type]=messaging&filter[cld]=%2B15558675309"

		status, body := get(cld, apiKey)
		require.Equal(t, 200, status)
		require.Equal(t, []string{ids[2], ids[1], ids[0]}, uuids(body), "newest first")

		status, body = get(cld+"&sort=created_at&page[size]=2&page[number]=2", apiKey)
		require.Equal(t, 200, status)
		require.Equal(t, []string{ids[2]}, uuids(body))
		require.EqualValues(t, 2, body["meta"].(map[string]any)["total_pages"])

		status, body = get(cld+"&filter[created_at][gte]="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), apiKey)
		require.Equal(t, 200, status)
		require.Empty(t, uuids(body))

		status, body = get("filter[record_type]=messaging&filter[direction]=inbound", apiKey)
		require.Equal(t, 200, status)
		require.Empty(t, uuids(body))

		status, body = get("filter[cld]=%2B15558675309", apiKey)
		require.Equal(t, 400, status)
		require.Equal(t, "10015", body["errors"].([]any)[0].(map[string]any)["code"])

		status, body = get(cld+"&page[size]=51", apiKey)
		require.Equal(t, 400, status)

		status, body = get(cld, "")
		require.Equal(t, 401, status)
		require.Equal(t, "10009", body["errors"].([]any)[0].(map[string]any)["code"])
		require.Equal(t, 7, b.sandbox.RecordCalls())
	})

	// With RecordDelay a stored message is missing from the detail-record
	// search until the delay has passed on the sandbox's clock, while a
	// fetch by id finds it at once: an empty search inside the delay
	// proves nothing, which is what the client's DetailRecordLag is for.
	t.Run("DetailRecordsLagByRecordDelay", func(t *testing.T) {
		t.Parallel()
		var ahead atomic.Int64 // how far the sandbox's clock is moved forward
		clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		const delay = time.Hour
		b := setup(t, telnyxsandbox.Config{RecordDelay: delay, Now: clock})
		b.sandbox.InjectFaults(telnyxsandbox.Fault{AcceptThenFail: true})

		m := outbound("hi")
		m.StatusCallbackURL = "http://127.0.0.1:1/webhooks/telnyx/status?m=7"
		attempt := time.Now()
		_, err := b.client.Send(context.Background(), m)
		require.Equal(t, sms.ClassAmbiguous, sendError(t, err).Class)
		stored := b.sandbox.Messages()
		require.Len(t, stored, 1, "the answer was lost, the message stored")
		got, err := b.client.Fetch(context.Background(), stored[0].ID)
		require.NoError(t, err)
		require.NotNil(t, got, "a fetch by id does not lag")

		found, err := smstest.FindOne(b.client, m, attempt)
		require.NoError(t, err)
		require.Nil(t, found, "a client that trusts the search at once misses the copy")

		lagging, err := telnyx.New(telnyx.Config{APIKey: apiKey, FromNumber: fromNumber, PublicKey: b.sandbox.PublicKeyBase64(),
			APIBaseURL: b.server.URL, RequestTimeout: 5 * time.Second, DetailRecordLag: 2 * delay}, nil)
		require.NoError(t, err)
		_, err = smstest.FindOne(lagging, m, attempt)
		require.ErrorIs(t, err, telnyx.ErrRecordsNotSettled, "inside its lag the client proves nothing")

		ahead.Store(int64(delay))
		found, err = smstest.FindOne(b.client, m, attempt)
		require.NoError(t, err)
		require.NotNil(t, found, "listed once the delay has passed")
		require.Equal(t, stored[0].ID, found.ProviderMessageID)
	})

	t.Run("DetailRecordsOfFinishedMessages", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond, FailureRate: 1})
		run(t, b.sandbox)
		m := outbound("hi")
		m.StatusCallbackURL = "http://127.0.0.1:1/status?m=1" // refused: retried, then given up
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return b.sandbox.Messages()[0].Status == "delivery_failed" }, 10*time.Second, time.Millisecond)

		req, err := http.NewRequest(http.MethodGet, b.server.URL+"/v2/detail_records?filter[record_type]=messaging", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Data []map[string]any `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Len(t, body.Data, 1)
		rec := body.Data[0]
		require.Equal(t, acc.ProviderMessageID, rec["uuid"])
		require.Equal(t, "failed", rec["status"])
		require.Contains(t, []any{[]any{"40006"}, []any{"40001"}}, rec["errors"])
		require.Equal(t, m.StatusCallbackURL, rec["delivery_status_webhook_url"])
		require.NotNil(t, rec["sent_at"])
		require.NotNil(t, rec["completed_at"])
		require.Equal(t, "outbound", rec["direction"])
		require.Equal(t, fromNumber, rec["cli"])
	})

	t.Run("UnknownPath", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		resp, err := http.Get(b.server.URL + "/v2/calls")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, 404, resp.StatusCode)
	})
}

// webhookSink is a webhook receiver: it records what arrives and answers
// with the statuses queued in fail (then 200).
type webhookSink struct {
	*httptest.Server
	got chan webhook

	mu   sync.Mutex
	fail []int
}

type webhook struct {
	body                 []byte
	signature, timestamp string
	userAgent            string
}

func newWebhookSink(t *testing.T, fail ...int) *webhookSink {
	t.Helper()
	s := &webhookSink{got: make(chan webhook, 100), fail: fail}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		s.got <- webhook{
			body:      raw,
			signature: r.Header.Get("telnyx-signature-ed25519"),
			timestamp: r.Header.Get("telnyx-timestamp"),
			userAgent: r.Header.Get("User-Agent"),
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.fail) > 0 {
			status := s.fail[0]
			s.fail = s.fail[1:]
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webhookSink) next(t *testing.T) webhook {
	t.Helper()
	select {
	case w := <-s.got:
		return w
	case <-time.After(10 * time.Second): // a deadlock guard, not a timing assertion
		t.Fatal("no webhook arrived")
		return webhook{}
	}
}

// meta reads a webhook's meta.attempt.
func attempt(t *testing.T, body []byte) int {
	t.Helper()
	var v struct {
		Meta struct {
			Attempt int `json:"attempt"`
		} `json:"meta"`
	}
	require.NoError(t, json.Unmarshal(body, &v))
	return v.Meta.Attempt
}

func TestWebhooks(t *testing.T) {
	t.Parallel()

	t.Run("SignedSentThenFinalized", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond})
		sink := newWebhookSink(t)
		run(t, b.sandbox)

		m := outbound("hi")
		m.StatusCallbackURL = sink.URL + "/webhooks/telnyx/status?m=123"
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)

		key, err := telnyx.ParsePublicKey(b.sandbox.PublicKeyBase64())
		require.NoError(t, err)
		_, otherKey, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		eventIDs := map[string]bool{}
		for _, want := range []struct{ eventType, status string }{
			{telnyx.EventMessageSent, "sent"},
			{telnyx.EventMessageFinalized, "delivered"},
		} {
			w := sink.next(t)
			require.Equal(t, "telnyx-webhooks", w.userAgent)
			require.NoError(t, b.client.VerifyWebhook(w.body, w.signature, w.timestamp, time.Now()))
			require.NoError(t, telnyx.Verify(key, w.body, w.signature, w.timestamp, time.Now()))

			tampered := []byte(strings.Replace(string(w.body), want.status, "failed", 1))
			require.ErrorIs(t, b.client.VerifyWebhook(tampered, w.signature, w.timestamp, time.Now()), telnyx.ErrBadSignature)
			require.ErrorIs(t, telnyx.Verify(otherKey.Public().(ed25519.PublicKey), w.body, w.signature, w.timestamp, time.Now()), telnyx.ErrBadSignature)
			require.ErrorIs(t, b.client.VerifyWebhook(w.body, w.signature, w.timestamp, time.Now().Add(time.Hour)), telnyx.ErrStaleTimestamp)

			ev, err := telnyx.ParseEvent(w.body)
			require.NoError(t, err)
			require.Equal(t, want.eventType, ev.Type)
			require.Equal(t, acc.ProviderMessageID, ev.MessageID)
			require.Equal(t, want.status, ev.Status)
			require.Equal(t, fromNumber, ev.From)
			require.Equal(t, toNumber, ev.To)
			require.WithinDuration(t, time.Now(), ev.OccurredAt, time.Minute)
			require.False(t, eventIDs[ev.ID], "every event has its own data.id")
			eventIDs[ev.ID] = true
			require.Equal(t, 1, attempt(t, w.body))

			r, err := b.client.ParseReport(ev.Type, w.body)
			require.NoError(t, err)
			require.Equal(t, acc.ProviderMessageID, r.ProviderMessageID)
			require.Equal(t, want.status, r.ProviderStatus)
		}
		require.Eventually(t, func() bool { return b.sandbox.Messages()[0].Status == "delivered" }, 10*time.Second, time.Millisecond)
		require.False(t, b.sandbox.Messages()[0].SentAt.IsZero())
	})

	t.Run("Failures", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond, FailureRate: 1, Seed: 3})
		sink := newWebhookSink(t)
		run(t, b.sandbox)

		m := outbound("hi")
		m.StatusCallbackURL = sink.URL + "/status"
		for range 20 {
			_, err := b.client.Send(context.Background(), m)
			require.NoError(t, err)
		}
		reasons := map[string]string{}
		for range 40 {
			w := sink.next(t)
			r, err := telnyx.ParseReport("", w.body)
			require.NoError(t, err)
			switch r.ProviderStatus {
			case "sent":
				require.Equal(t, sms.StatusSent, r.Status)
				require.Empty(t, r.ErrorCode)
			case "delivery_failed":
				require.Equal(t, sms.StatusUndelivered, r.Status)
				reasons[r.ErrorCode] = r.Reason
			default:
				t.Fatalf("unexpected status %q", r.ProviderStatus)
			}
		}
		require.Equal(t, map[string]string{"40006": sms.ReasonUnreachable, "40001": sms.ReasonInvalidNumber}, reasons)
	})

	t.Run("SameSeedSameFates", func(t *testing.T) {
		t.Parallel()
		fates := func() []string {
			b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond, FailureRate: 0.5, Seed: 42})
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
					out = append(out, m.Status+m.ErrorCode)
				}
				return true
			}, 10*time.Second, 5*time.Millisecond)
			return out
		}
		first := fates()
		require.Equal(t, first, fates())
		require.Contains(t, first, "delivered")
	})

	t.Run("RetriedWithTheSameID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond})
		sink := newWebhookSink(t, 500, 503)
		run(t, b.sandbox)

		m := outbound("hi")
		m.StatusCallbackURL = sink.URL
		_, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)

		var ids []string
		var attempts []int
		for range 3 {
			w := sink.next(t)
			require.NoError(t, b.client.VerifyWebhook(w.body, w.signature, w.timestamp, time.Now()))
			ev, err := telnyx.ParseEvent(w.body)
			require.NoError(t, err)
			require.Equal(t, telnyx.EventMessageSent, ev.Type)
			ids = append(ids, ev.ID)
			attempts = append(attempts, attempt(t, w.body))
		}
		require.Equal(t, []int{1, 2, 3}, attempts)
		require.Equal(t, ids[0], ids[1])
		require.Equal(t, ids[0], ids[2])

		next, err := telnyx.ParseEvent(sink.next(t).body)
		require.NoError(t, err)
		require.Equal(t, telnyx.EventMessageFinalized, next.Type)
		require.NotEqual(t, ids[0], next.ID)
	})

	t.Run("GivesUpAfterFourAttempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond})
		sink := newWebhookSink(t, 500, 500, 500, 500)
		run(t, b.sandbox)

		m := outbound("hi")
		m.StatusCallbackURL = sink.URL
		_, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)

		for want := 1; want <= 4; want++ {
			w := sink.next(t)
			ev, err := telnyx.ParseEvent(w.body)
			require.NoError(t, err)
			require.Equal(t, telnyx.EventMessageSent, ev.Type)
			require.Equal(t, want, attempt(t, w.body))
		}
		ev, err := telnyx.ParseEvent(sink.next(t).body)
		require.NoError(t, err)
		require.Equal(t, telnyx.EventMessageFinalized, ev.Type, "the next event, not a fifth attempt")
	})

	t.Run("NoWebhookURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond})
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
			select { // a webhook endpoint that never answers
			case <-r.Context().Done():
			case <-block:
			}
		}))
		t.Cleanup(sink.Close)
		t.Cleanup(func() { close(block) })

		b := setup(t, telnyxsandbox.Config{CallbackDelay: time.Millisecond})
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
		require.NoError(t, <-done) // returns although the webhook hangs
		require.Equal(t, "sent", b.sandbox.Messages()[0].Status)
	})

	t.Run("GivenKey", func(t *testing.T) {
		t.Parallel()
		pub, priv, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		sb := telnyxsandbox.New(telnyxsandbox.Config{APIKey: apiKey, PrivateKey: priv}, nil)
		require.Equal(t, base64.StdEncoding.EncodeToString(pub), sb.PublicKeyBase64())
	})
}

func TestSendInbound(t *testing.T) {
	t.Parallel()

	t.Run("SignedMessageReceived", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		sink := newWebhookSink(t)

		require.NoError(t, b.sandbox.SendInbound(context.Background(), sink.URL+"/webhooks/telnyx", toNumber, fromNumber, "Yes, see you then"))
		w := sink.next(t)
		require.NoError(t, b.client.VerifyWebhook(w.body, w.signature, w.timestamp, time.Now()))
		ev, err := telnyx.ParseInbound(w.body)
		require.NoError(t, err)
		require.Equal(t, telnyx.EventMessageReceived, ev.Type)
		require.Equal(t, "inbound", ev.Direction)
		require.Equal(t, toNumber, ev.From)
		require.Equal(t, fromNumber, ev.To)
		require.Equal(t, "Yes, see you then", ev.Text)
		require.NotEmpty(t, ev.ID)

		_, err = b.client.ParseReport("", w.body)
		require.ErrorIs(t, err, telnyx.ErrNotReport)

		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)
		require.Equal(t, "inbound", msgs[0].Direction)
		require.Equal(t, ev.MessageID, msgs[0].ID)
	})

	t.Run("StopBlocksAndStartUnblocks", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		sink := newWebhookSink(t)

		require.NoError(t, b.sandbox.SendInbound(context.Background(), sink.URL, toNumber, fromNumber, " stop "))
		_, err := b.client.Send(context.Background(), outbound("hi"))
		se := sendError(t, err)
		require.Equal(t, sms.ClassRecipient, se.Class)
		require.Equal(t, sms.ReasonOptedOut, se.Reason)
		require.Equal(t, "40300", se.Code)
		require.Equal(t, 409, se.HTTPStatus)

		_, err = b.client.Send(context.Background(), sms.Outbound{To: "+15550000000", Body: "someone else"})
		require.NoError(t, err, "the block is per recipient")

		require.NoError(t, b.sandbox.SendInbound(context.Background(), sink.URL, toNumber, fromNumber, "Start"))
		_, err = b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)

		require.NoError(t, b.sandbox.SendInbound(context.Background(), sink.URL, toNumber, fromNumber, "stop all"))
		_, err = b.client.Send(context.Background(), outbound("hi"))
		require.Equal(t, sms.ReasonOptedOut, sendError(t, err).Reason)

		require.NoError(t, b.sandbox.SendInbound(context.Background(), sink.URL, toNumber, fromNumber, "Stop please"))
		require.NoError(t, b.sandbox.SendInbound(context.Background(), sink.URL, toNumber, fromNumber, "UNSTOP"))
		_, err = b.client.Send(context.Background(), outbound("hi"))
		require.NoError(t, err)
	})

	t.Run("ReportsARefusal", func(t *testing.T) {
		t.Parallel()
		b := setup(t, telnyxsandbox.Config{})
		sink := newWebhookSink(t, http.StatusForbidden)

		err := b.sandbox.SendInbound(context.Background(), sink.URL, toNumber, fromNumber, "HELP")
		require.ErrorContains(t, err, "403")
		require.NotContains(t, err.Error(), strings.TrimPrefix(toNumber, "+"))

		err = b.sandbox.SendInbound(context.Background(), "http://127.0.0.1:1/", toNumber, fromNumber, "HELP")
		require.Error(t, err)
	})
}
