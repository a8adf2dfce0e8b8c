package telnyx

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/sms/smstest"
)

const (
	testAPIKey    = "KEY0123456789ABCDEF_test"
	testFrom      = "+15005550006"
	testProfileID = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"
	testMsgID     = "40385f64-5717-4562-b3fc-2c963f66afa6"
)

// testPublicKey is a valid base64 public key for configurations.
var testPublicKey = base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))

// received is one request the fake Telnyx saw.
type received struct {
	Method, Path, ContentType, Authorization string
	Query                                    url.Values
	JSON                                     map[string]any
}

// fakeTelnyx records every request and answers with handle.
type fakeTelnyx struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []received
	conns atomic.Int32
}

func (f *fakeTelnyx) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.reqs...)
}

type testBundle struct {
	fake   *fakeTelnyx
	client *Client
	now    time.Time
}

func testConfig(baseURL string) Config {
	return Config{
		APIKey:          testAPIKey,
		FromNumber:      testFrom,
		PublicKey:       testPublicKey,
		APIBaseURL:      baseURL,
		RequestTimeout:  5 * time.Second,
		DetailRecordLag: 5 * time.Minute,
	}
}

// setup starts a fake Telnyx answering with handle and a Client pointing at
// it; mutate adjusts the configuration.
func setup(t *testing.T, handle http.HandlerFunc, mutate ...func(*Config)) *testBundle {
	t.Helper()
	f := &fakeTelnyx{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := received{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
			ContentType: r.Header.Get("Content-Type"), Authorization: r.Header.Get("Authorization"),
		}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			_ = json.Unmarshal(b, &rec.JSON)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		f.mu.Unlock()
		handle(w, r)
	}))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)

	cfg := testConfig(f.URL)
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(cfg, nil)
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	return &testBundle{fake: f, client: c, now: now}
}

func outbound() sms.Outbound {
	return sms.Outbound{
		MessageID:         42,
		To:                testNumber,
		Body:              "Your appointment is tomorrow at 9:00. Reply STOP to opt out.",
		StatusCallbackURL: "https://switchboard.example/webhooks/telnyx/status?m=42",
	}
}

// messageJSON is a message resource as Telnyx returns it.
func messageJSON(id, to, text, webhookURL, status string, received time.Time) map[string]any {
	return map[string]any{
		"record_type": "message", "direction": "outbound", "id": id, "type": "SMS",
		"messaging_profile_id": testProfileID,
		"from":                 map[string]any{"phone_number": testFrom, "carrier": "Telnyx", "line_type": "Wireless"},
		"to":                   []any{map[string]any{"phone_number": to, "status": status, "carrier": "T-Mobile USA", "line_type": "Wireless"}},
		"text":                 text, "media": []any{}, "webhook_url": webhookURL, "webhook_failover_url": "",
		"encoding": "GSM-7", "parts": 2, "tags": []any{}, "cost": nil,
		"received_at": received.Format(time.RFC3339Nano), "sent_at": nil, "completed_at": nil,
		"valid_until": received.Add(4 * time.Hour).Format(time.RFC3339Nano), "errors": []any{},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// telnyxError answers with Telnyx's error body; its detail quotes the
// number, as Telnyx's do.
func telnyxError(w http.ResponseWriter, status int, code, pointer string) {
	e := map[string]any{"code": code, "title": "Some title", "detail": "Messages cannot be sent to " + testNumber + "."}
	if pointer != "" {
		e["source"] = map[string]string{"pointer": pointer}
	}
	writeJSON(w, status, map[string]any{"errors": []any{e}})
}

func accepted(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"data": messageJSON(testMsgID, testNumber, "hi", "", "queued", time.Now())})
}

func requireSendError(t *testing.T, err error) *sms.SendError {
	t.Helper()
	var se *sms.SendError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "telnyx", se.Provider)
	require.NotContains(t, se.Error(), strings.TrimPrefix(testNumber, "+"))
	require.NotContains(t, se.Error(), testAPIKey)
	return se
}

func TestClientSend(t *testing.T) {
	t.Parallel()

	t.Run("SendsTheMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, accepted)

		m := outbound()
		m.ValidityPeriod = 10 * time.Minute
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)
		require.Equal(t, sms.Accepted{ProviderMessageID: testMsgID, Status: "queued", Segments: 2}, acc)

		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		r := reqs[0]
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/v2/messages", r.Path)
		require.Equal(t, "application/json", r.ContentType)
		require.Equal(t, "Bearer "+testAPIKey, r.Authorization)
		require.Empty(t, r.Query)
		require.Equal(t, map[string]any{
			"from":                 testFrom,
			"to":                   m.To,
			"text":                 m.Body,
			"type":                 "SMS",
			"webhook_url":          m.StatusCallbackURL,
			"use_profile_webhooks": false,
		}, r.JSON)
	})

	t.Run("ProfileWithoutCallback", func(t *testing.T) {
		t.Parallel()
		b := setup(t, accepted, func(c *Config) { c.FromNumber, c.MessagingProfileID = "", testProfileID })

		m := outbound()
		m.StatusCallbackURL = ""
		_, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)
		require.Equal(t, map[string]any{
			"messaging_profile_id": testProfileID,
			"to":                   m.To,
			"text":                 m.Body,
			"type":                 "SMS",
		}, b.fake.requests()[0].JSON)
	})

	t.Run("AlphanumericSenderWithProfile", func(t *testing.T) {
		t.Parallel()
		b := setup(t, accepted, func(c *Config) { c.FromNumber, c.MessagingProfileID = "Clinic", testProfileID })

		_, err := b.client.Send(context.Background(), outbound())
		require.NoError(t, err)
		got := b.fake.requests()[0].JSON
		require.Equal(t, "Clinic", got["from"])
		require.Equal(t, testProfileID, got["messaging_profile_id"])
	})

	t.Run("BaseURLPathIsAPrefix", func(t *testing.T) {
		t.Parallel()
		var b *testBundle
		b = setup(t, accepted, func(c *Config) { c.APIBaseURL += "/sandbox/telnyx/" })

		_, err := b.client.Send(context.Background(), outbound())
		require.NoError(t, err)
		require.Equal(t, "/sandbox/telnyx/v2/messages", b.fake.requests()[0].Path)
	})

	t.Run("ReusesConnectionsAfterErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 400, "10002", "/to") })

		for range 5 {
			_, err := b.client.Send(context.Background(), outbound())
			require.Error(t, err)
		}
		require.Len(t, b.fake.requests(), 5)
		require.EqualValues(t, 1, b.fake.conns.Load())
	})
}

func TestClientSendErrors(t *testing.T) {
	t.Parallel()

	retryAt := time.Date(2026, 3, 1, 12, 1, 30, 0, time.UTC) // 90s after the bundle's now

	throttled := func(kv ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < len(kv); i += 2 {
				w.Header().Set(kv[i], kv[i+1])
			}
			telnyxError(w, 429, "10011", "")
		}
	}
	tests := []struct {
		name       string
		handle     http.HandlerFunc
		class      sms.Class
		reason     string
		code       string
		status     int
		retryAfter time.Duration
		undecoded  bool
	}{
		{
			name:   "InvalidNumber",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 400, "10002", "/to") },
			class:  sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10002", status: 400,
		},
		{
			name:   "NotE164",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 400, "10016", "/to") },
			class:  sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "10016", status: 400,
		},
		{
			name:   "OptedOut",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 409, "40300", "") },
			class:  sms.ClassRecipient, reason: sms.ReasonOptedOut, code: "40300", status: 409,
		},
		{
			name:   "InvalidSender",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 400, "10002", "/from") },
			class:  sms.ClassPermanent, code: "10002", status: 400,
		},
		{
			name:   "InactiveSender",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 400, "10001", "/from") },
			class:  sms.ClassPermanent, code: "10001", status: 400,
		},
		{
			name:   "BadCredentials",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 401, "10009", "") },
			class:  sms.ClassPermanent, code: "10009", status: 401,
		},
		{
			name:   "Forbidden",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 403, "10010", "") },
			class:  sms.ClassPermanent, code: "10010", status: 403,
		},
		{
			name:   "MissingParameter",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 422, "10004", "/text") },
			class:  sms.ClassPermanent, code: "10004", status: 422,
		},
		{
			name:   "SpamBlocked",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 400, "40003", "") },
			class:  sms.ClassPermanent, code: "40003", status: 400,
		},
		{name: "ThrottledNoHeader", handle: throttled(), class: sms.ClassThrottled, code: "10011", status: 429, retryAfter: time.Second},
		{name: "ThrottledRetryAfterMs", handle: throttled("Retry-After-Ms", "2500"), class: sms.ClassThrottled, code: "10011", status: 429, retryAfter: 2500 * time.Millisecond},
		{name: "ThrottledRetryAfterSeconds", handle: throttled("Retry-After", "7"), class: sms.ClassThrottled, code: "10011", status: 429, retryAfter: 7 * time.Second},
		{name: "ThrottledRetryAfterHTTPDate", handle: throttled("Retry-After", retryAt.Format(http.TimeFormat)), class: sms.ClassThrottled, code: "10011", status: 429, retryAfter: 90 * time.Second},
		{name: "ThrottledRateLimitReset", handle: throttled("X-Ratelimit-Limit", "50", "X-Ratelimit-Remaining", "0", "X-Ratelimit-Reset", "4"), class: sms.ClassThrottled, code: "10011", status: 429, retryAfter: 4 * time.Second},
		{name: "ThrottledPrecedence", handle: throttled("Retry-After-Ms", "300", "Retry-After", "7", "X-Ratelimit-Reset", "4"), class: sms.ClassThrottled, code: "10011", status: 429, retryAfter: 300 * time.Millisecond},
		{
			name:   "ServerErrorJSON",
			handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 500, "10007", "") },
			class:  sms.ClassAmbiguous, code: "10007", status: 500,
		},
		{
			name:   "ServiceUnavailableEmpty",
			handle: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
			class:  sms.ClassAmbiguous, status: 503, undecoded: true,
		},
		{
			name: "BadGatewayHTML",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
			},
			class: sms.ClassAmbiguous, status: 502, undecoded: true,
		},
		{
			name: "GarbageSuccess",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, "garbage{")
			},
			class: sms.ClassAmbiguous, status: 200, undecoded: true,
		},
		{
			name: "SuccessWithoutID",
			handle: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"to": []any{map[string]any{"status": "queued"}}}})
			},
			class: sms.ClassAmbiguous, status: 200, undecoded: true,
		},
		{
			name: "SuccessWrongShape",
			handle: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"id": 12, "parts": "two"}})
			},
			class: sms.ClassAmbiguous, status: 200, undecoded: true,
		},
		{
			name: "Redirect",
			handle: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://example.com/", http.StatusFound)
			},
			class: sms.ClassPermanent, status: 302,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.handle)

			_, err := b.client.Send(context.Background(), outbound())
			se := requireSendError(t, err)
			require.Equal(t, tt.class, se.Class)
			require.Equal(t, tt.reason, se.Reason)
			require.Equal(t, tt.code, se.Code)
			require.Equal(t, tt.status, se.HTTPStatus)
			require.Equal(t, tt.retryAfter, se.RetryAfter)
			require.Equal(t, tt.undecoded, errors.Is(err, ErrUndecodable))
			require.NotContains(t, se.Error(), "Some title")
			require.Len(t, b.fake.requests(), 1, "never retried by the adapter")
		})
	}
}

func TestClientSendNoAnswer(t *testing.T) {
	t.Parallel()

	t.Run("TimeoutAfterWriteIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, func(c *Config) {
			// Long enough that even a loaded machine writes the request
			// before the timer fires (a timeout before the write is
			// retryable, another case).
			c.RequestTimeout = 2 * time.Second
		})
		t.Cleanup(func() { close(release) }) // runs before the server closes

		_, err := b.client.Send(context.Background(), outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Zero(t, se.HTTPStatus)
		require.Len(t, b.fake.requests(), 1)
	})

	t.Run("BodyCutAfterSuccessIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			// The status arrives, the body is cut: the server closes the
			// connection after fewer bytes than it declared.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "200")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"data":{"id":"`)
		})

		_, err := b.client.Send(context.Background(), outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Equal(t, 200, se.HTTPStatus)
		require.ErrorIs(t, err, ErrUndecodable)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})

	t.Run("CancelAfterWriteIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-r.Context().Done()
		}, func(c *Config) { c.RequestTimeout = time.Hour })

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		_, err := b.client.Send(ctx, outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("CancelledBeforeSendIsRetryable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, accepted)

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := b.client.Send(ctx, outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
		require.Empty(t, b.fake.requests())
	})

	t.Run("ClosedPortIsRetryable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		c, err := New(testConfig("http://"+addr), nil)
		require.NoError(t, err)
		_, err = c.Send(context.Background(), outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
		require.Zero(t, se.HTTPStatus)
	})

	t.Run("DroppedConnectionIsAmbiguous", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		})

		_, err := b.client.Send(context.Background(), outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Len(t, b.fake.requests(), 1, "a POST is not retried on a dropped connection")
	})
}

// recordJSON is a message detail record as Telnyx lists it.
func recordJSON(id, cld, cli string, created time.Time) map[string]any {
	return map[string]any{
		"record_type": "message_detail_record", "uuid": id, "direction": "outbound",
		"cld": cld, "cli": cli, "profile_id": testProfileID, "message_type": "SMS", "parts": 2,
		"status": "delivered", "errors": []any{}, "created_at": created.Format(time.RFC3339Nano),
	}
}

// fakeRecords answers detail-record searches with pages of records and
// fetches with msgs by id.
func fakeRecords(pages [][]map[string]any, msgs map[string]map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/detail_records":
			n := 1
			_, _ = fmt.Sscan(r.URL.Query().Get("page[number]"), &n)
			data := []map[string]any{}
			if n >= 1 && n <= len(pages) {
				data = pages[n-1]
			}
			writeJSON(w, http.StatusOK, map[string]any{
				"data": data,
				"meta": map[string]any{"page_number": n, "page_size": findPageSize, "total_pages": len(pages), "total_results": 0},
			})
		case strings.HasPrefix(r.URL.Path, "/v2/messages/"):
			msg, ok := msgs[strings.TrimPrefix(r.URL.Path, "/v2/messages/")]
			if !ok {
				telnyxError(w, 404, "10005", "")
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"data": msg})
		default:
			http.NotFound(w, r)
		}
	}
}

func TestClientFindSent(t *testing.T) {
	t.Parallel()

	m := outbound()
	// since is more than the lag before the bundle's now: absence is final.
	since := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	id := func(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

	t.Run("SearchesThenConfirms", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords(
			[][]map[string]any{{
				recordJSON(id(1), m.To, testFrom, since.Add(3*time.Minute)),
				recordJSON(id(2), m.To, testFrom, since.Add(2*time.Minute)),
			}},
			map[string]map[string]any{
				// Same body to the same patient, another message (another
				// callback URL): not ours.
				id(1): messageJSON(id(1), m.To, m.Body, "https://switchboard.example/webhooks/telnyx/status?m=43", "sent", since.Add(3*time.Minute)),
				id(2): messageJSON(id(2), m.To, m.Body, m.StatusCallbackURL, "delivered", since.Add(2*time.Minute)),
			},
		))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Equal(t, &sms.Accepted{ProviderMessageID: id(2), Status: "delivered", Segments: 2}, acc)

		reqs := b.fake.requests()
		// The oldest candidate first: this message's copy, made at the
		// attempt, before any later message to the number. Found, the
		// search ends; the newer one is never read.
		require.Len(t, reqs, 2)
		r := reqs[0]
		require.Equal(t, http.MethodGet, r.Method)
		require.Equal(t, "/v2/detail_records", r.Path)
		require.Equal(t, "Bearer "+testAPIKey, r.Authorization)
		require.Equal(t, url.Values{
			"filter[record_type]":     {"messaging"},
			"filter[direction]":       {"outbound"},
			"filter[cld]":             {m.To},
			"filter[created_at][gte]": {"2026-02-28"},
			"sort":                    {"-created_at"},
			"page[size]":              {"20"},
			"page[number]":            {"1"},
		}, r.Query)
		require.Equal(t, "/v2/messages/"+id(2), reqs[1].Path)
		require.Equal(t, "Bearer "+testAPIKey, reqs[1].Authorization)
	})

	// A busy number: more candidates than the old look-up fetched (5), with
	// this message's copy the 25th. The old look-up answered none and the
	// message was sent again (the 30-minute crash run's second copies).
	t.Run("ReadsEveryCandidateOfABusyNumber", func(t *testing.T) {
		t.Parallel()
		var page1, page2 []map[string]any
		msgs := map[string]map[string]any{}
		for n := 1; n <= 30; n++ {
			at := since.Add(time.Duration(60-n) * time.Second)
			rec := recordJSON(id(n), m.To, testFrom, at)
			if n <= findPageSize {
				page1 = append(page1, rec)
			} else {
				page2 = append(page2, rec)
			}
			cb := fmt.Sprintf("https://switchboard.example/webhooks/telnyx/status?m=%d", 1000+n)
			if n == 25 {
				cb = m.StatusCallbackURL
			}
			msgs[id(n)] = messageJSON(id(n), m.To, m.Body, cb, "delivered", at)
		}
		b := setup(t, fakeRecords([][]map[string]any{page1, page2}, msgs))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.NotNil(t, acc, "the copy on the second page, 25th candidate, is found")
		require.Equal(t, id(25), acc.ProviderMessageID)
	})

	t.Run("MoreCandidatesThanALookUpReadsIsIncomplete", func(t *testing.T) {
		t.Parallel()
		var pages [][]map[string]any
		msgs := map[string]map[string]any{}
		for n := 1; n <= findMaxFetches+1; n++ {
			at := since.Add(time.Minute)
			if (n-1)%findPageSize == 0 {
				pages = append(pages, nil)
			}
			pages[len(pages)-1] = append(pages[len(pages)-1], recordJSON(id(n), m.To, testFrom, at))
			msgs[id(n)] = messageJSON(id(n), m.To, m.Body, fmt.Sprintf("https://switchboard.example/webhooks/telnyx/status?m=%d", 1000+n), "delivered", at)
		}
		b := setup(t, fakeRecords(pages, msgs))

		_, err := smstest.FindOne(b.client, m, since)
		require.ErrorIs(t, err, sms.ErrLookupIncomplete)
		require.Equal(t, resilience.Healthy, sms.Outcome(err))
	})

	// A busy number: since the attempt, Telnyx holds 150 other messages'
	// copies to the recipient, and none of this message (its send was
	// refused after all). Without taken every record is a candidate to
	// fetch, more than a look-up reads: the absence cannot be proven and the
	// message would be held. That was every look-up on a busy number before
	// taken; in the 30-minute crash run each was ~100 reads, one of which
	// always failed (a third of reads fail there), until the message ran out
	// of attempts. With taken the others are left without a read, and the
	// absence is proven by the pages alone.
	t.Run("OnABusyNumberCopiesOtherMessagesHoldAreNotRead", func(t *testing.T) {
		t.Parallel()
		const others = 150
		var pages [][]map[string]any
		msgs := map[string]map[string]any{}
		taken := map[string]bool{}
		for n := others; n >= 1; n-- { // newest first
			at := since.Add(time.Duration(n) * time.Second)
			if len(pages) == 0 || len(pages[len(pages)-1]) == findPageSize {
				pages = append(pages, nil)
			}
			pages[len(pages)-1] = append(pages[len(pages)-1], recordJSON(id(n), m.To, testFrom, at))
			msgs[id(n)] = messageJSON(id(n), m.To, m.Body, fmt.Sprintf("https://switchboard.example/webhooks/telnyx/status?m=%d", 1000+n), "delivered", at)
			taken[id(n)] = true
		}

		b := setup(t, fakeRecords(pages, msgs))
		_, err := b.client.FindSent(context.Background(), m, since, nil)
		require.ErrorIs(t, err, sms.ErrLookupIncomplete, "without taken: every copy is a candidate to read")

		b = setup(t, fakeRecords(pages, msgs))
		var asked int
		cands, err := b.client.FindSent(context.Background(), m, since, func(_ context.Context, ids []string) (map[string]bool, error) {
			asked += len(ids)
			return taken, nil
		})
		require.NoError(t, err)
		require.Empty(t, cands, "proven absent")
		require.Equal(t, others, asked, "taken was asked about every record once")
		require.Len(t, b.fake.requests(), len(pages), "the pages, and no fetch")
	})

	t.Run("MoreRecordsThanALookUpReadsIsIncomplete", func(t *testing.T) {
		t.Parallel()
		// Every page full and within the window, and more pages behind it.
		full := make([]map[string]any, findPageSize)
		for i := range full {
			full[i] = recordJSON(id(i+1), "+15550000001", testFrom, since.Add(time.Minute)) // not ours: not fetched
		}
		pages := make([][]map[string]any, findMaxPages+1)
		for i := range pages {
			pages[i] = full
		}
		b := setup(t, fakeRecords(pages, nil))

		_, err := smstest.FindOne(b.client, m, since)
		require.ErrorIs(t, err, sms.ErrLookupIncomplete)
		require.Len(t, b.fake.requests(), findMaxPages)
	})

	t.Run("MatchesTheTextWithoutCallback", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords(
			[][]map[string]any{{
				recordJSON(id(1), m.To, testFrom, since.Add(2*time.Minute)),
				recordJSON(id(2), m.To, testFrom, since.Add(time.Minute)),
			}},
			map[string]map[string]any{
				id(1): messageJSON(id(1), m.To, "another body", "", "sent", since.Add(2*time.Minute)),
				id(2): messageJSON(id(2), m.To, m.Body, "", "queued", since.Add(time.Minute)),
			},
		))

		plain := m
		plain.StatusCallbackURL = ""
		acc, err := smstest.FindOne(b.client, plain, since)
		require.NoError(t, err)
		require.NotNil(t, acc)
		require.Equal(t, id(2), acc.ProviderMessageID)
	})

	t.Run("CallbackMatchesWhenTextIsRedacted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords(
			[][]map[string]any{{recordJSON(id(1), m.To, testFrom, since)}},
			map[string]map[string]any{id(1): messageJSON(id(1), m.To, "", m.StatusCallbackURL, "sent", since)},
		))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.NotNil(t, acc)
	})

	t.Run("SkipsWhatCannotBeOurs", func(t *testing.T) {
		t.Parallel()
		inbound := recordJSON(id(3), m.To, testFrom, since.Add(time.Minute))
		inbound["direction"] = "inbound"
		noSender := recordJSON(id(5), m.To, "", since.Add(time.Minute)) // no cli: fetched to check
		b := setup(t, fakeRecords(
			[][]map[string]any{{
				recordJSON(id(1), m.To, "+15550000000", since.Add(time.Minute)), // another sender
				recordJSON(id(2), "+15550000001", testFrom, since.Add(time.Minute)),
				inbound,
				recordJSON("../v2/calls", m.To, testFrom, since.Add(time.Minute)),
				noSender,
				recordJSON(id(4), m.To, testFrom, since.Add(-2*time.Minute)), // before the window
			}},
			map[string]map[string]any{
				id(5): messageJSON(id(5), m.To, m.Body, "", "sent", since.Add(-2*time.Minute)), // received before the window
			},
		))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
		reqs := b.fake.requests()
		require.Len(t, reqs, 2, "one search, one fetch")
		require.Equal(t, "/v2/messages/"+id(5), reqs[1].Path)
	})

	t.Run("WithinClockSkew", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords(
			[][]map[string]any{{recordJSON(id(1), m.To, testFrom, since.Add(-30*time.Second))}},
			map[string]map[string]any{id(1): messageJSON(id(1), m.To, m.Body, m.StatusCallbackURL, "sent", since.Add(-30*time.Second))},
		))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.NotNil(t, acc)
	})

	t.Run("ProfileSender", func(t *testing.T) {
		t.Parallel()
		other := recordJSON(id(1), m.To, "+15550100001", since)
		other["profile_id"] = "another-profile"
		b := setup(t, fakeRecords(
			[][]map[string]any{{other, recordJSON(id(2), m.To, "+15550100002", since)}},
			map[string]map[string]any{id(2): messageJSON(id(2), m.To, m.Body, m.StatusCallbackURL, "sent", since)},
		), func(c *Config) { c.FromNumber, c.MessagingProfileID = "", testProfileID })

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.NotNil(t, acc)
		require.Equal(t, id(2), acc.ProviderMessageID)
		require.Len(t, b.fake.requests(), 2)
	})

	t.Run("FollowsEveryPageOfTheWindow", func(t *testing.T) {
		t.Parallel()
		page := func(from int) []map[string]any {
			var out []map[string]any
			for i := range findPageSize {
				out = append(out, recordJSON(id(from+i), "+15550000000", testFrom, since.Add(time.Hour)))
			}
			return out
		}
		b := setup(t, fakeRecords([][]map[string]any{page(0), page(100), page(200), page(300)}, nil))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
		reqs := b.fake.requests()
		require.Len(t, reqs, 4, "to the last page, and no further")
		require.Equal(t, "4", reqs[3].Query.Get("page[number]"))
	})

	t.Run("StopsAtOlderRecords", func(t *testing.T) {
		t.Parallel()
		page := make([]map[string]any, 0, findPageSize)
		for i := range findPageSize {
			page = append(page, recordJSON(id(i), "+15550000000", testFrom, since.Add(-time.Duration(i)*time.Minute)))
		}
		b := setup(t, fakeRecords([][]map[string]any{page, page}, nil))

		_, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Len(t, b.fake.requests(), 1)
	})

	t.Run("FetchesEveryCandidate", func(t *testing.T) {
		t.Parallel()
		var records []map[string]any
		msgs := map[string]map[string]any{}
		for i := range 8 {
			records = append(records, recordJSON(id(i), m.To, testFrom, since.Add(time.Minute)))
			msgs[id(i)] = messageJSON(id(i), m.To, "other", "", "sent", since.Add(time.Minute))
		}
		b := setup(t, fakeRecords([][]map[string]any{records}, msgs))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
		require.Len(t, b.fake.requests(), 1+8)
	})

	t.Run("NotSettledIsThrottled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords([][]map[string]any{{}}, nil))

		recent := b.now.Add(-2 * time.Minute)
		_, err := smstest.FindOne(b.client, m, recent)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassThrottled, se.Class)
		require.Equal(t, 3*time.Minute, se.RetryAfter)
		require.ErrorIs(t, err, ErrRecordsNotSettled)
		require.ErrorIs(t, err, sms.ErrRecordsNotSettled, "the domain holds it as provider_records_lag, not as a 429")
	})

	t.Run("NotSettledButFound", func(t *testing.T) {
		t.Parallel()
		recent := time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC)
		b := setup(t, fakeRecords(
			[][]map[string]any{{recordJSON(id(1), m.To, testFrom, recent)}},
			map[string]map[string]any{id(1): messageJSON(id(1), m.To, m.Body, m.StatusCallbackURL, "queued", recent)},
		))

		acc, err := smstest.FindOne(b.client, m, recent)
		require.NoError(t, err)
		require.NotNil(t, acc)
	})

	t.Run("NoLagTrustsAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords([][]map[string]any{{}}, nil), func(c *Config) { c.DetailRecordLag = 0 })

		acc, err := smstest.FindOne(b.client, m, b.now)
		require.NoError(t, err)
		require.Nil(t, acc)
	})

	t.Run("CandidateVanished", func(t *testing.T) {
		t.Parallel()
		b := setup(t, fakeRecords([][]map[string]any{{recordJSON(id(1), m.To, testFrom, since)}}, nil))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
	})

	errorCases := []struct {
		name   string
		handle http.HandlerFunc
		class  sms.Class
	}{
		{name: "SearchServerErrorIsRetryable", handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 503, "10007", "") }, class: sms.ClassRetryable},
		{name: "SearchUnauthorizedIsPermanent", handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 401, "10009", "") }, class: sms.ClassPermanent},
		{name: "SearchGarbageIsRetryable", handle: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }, class: sms.ClassRetryable},
		{name: "SearchWithoutDataIsRetryable", handle: func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{}) }, class: sms.ClassRetryable},
		{
			name: "FetchServerErrorIsRetryable",
			handle: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/detail_records" {
					fakeRecords([][]map[string]any{{recordJSON(id(1), m.To, testFrom, since)}}, nil)(w, r)
					return
				}
				telnyxError(w, 500, "10007", "")
			},
			class: sms.ClassRetryable,
		},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.handle)

			_, err := smstest.FindOne(b.client, m, since)
			se := requireSendError(t, err)
			require.Equal(t, tt.class, se.Class)
		})
	}

	t.Run("SearchThrottled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			telnyxError(w, 429, "10011", "")
		})

		_, err := smstest.FindOne(b.client, m, since)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassThrottled, se.Class)
		require.Equal(t, 3*time.Second, se.RetryAfter)
	})

	t.Run("SearchTimeoutKeepsTheNumberOut", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, func(c *Config) { c.RequestTimeout = 250 * time.Millisecond })
		t.Cleanup(func() { close(release) })

		_, err := smstest.FindOne(b.client, m, since)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
		require.NotContains(t, se.Error(), "filter")
		require.NotContains(t, se.Error(), url.QueryEscape(m.To))
	})
}

func TestClientFetch(t *testing.T) {
	t.Parallel()

	t.Run("Found", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"data": messageJSON(testMsgID, testNumber, "hello", "", "delivered", time.Now())})
		})

		acc, err := b.client.Fetch(context.Background(), testMsgID)
		require.NoError(t, err)
		require.Equal(t, &sms.Accepted{ProviderMessageID: testMsgID, Status: "delivered", Segments: 2}, acc)
		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, http.MethodGet, reqs[0].Method)
		require.Equal(t, "/v2/messages/"+testMsgID, reqs[0].Path)
		require.Equal(t, "Bearer "+testAPIKey, reqs[0].Authorization)
		require.Empty(t, reqs[0].ContentType)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 404, "10005", "") })

		acc, err := b.client.Fetch(context.Background(), testMsgID)
		require.NoError(t, err)
		require.Nil(t, acc)
	})

	t.Run("NotFoundWithoutCodeIsAnError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, http.NotFound)

		_, err := b.client.Fetch(context.Background(), testMsgID)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassPermanent, se.Class)
		require.ErrorIs(t, err, ErrUndecodable)
	})

	t.Run("ServerErrorIsRetryable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 502, "10007", "") })

		_, err := b.client.Fetch(context.Background(), testMsgID)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
	})

	t.Run("GarbageIsRetryable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{") })

		_, err := b.client.Fetch(context.Background(), testMsgID)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
		require.ErrorIs(t, err, ErrUndecodable)
	})

	t.Run("InvalidID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, accepted)

		for _, id := range []string{"../calls", "", "a b", strings.Repeat("a", 101)} {
			_, err := b.client.Fetch(context.Background(), id)
			se := requireSendError(t, err)
			require.Equal(t, sms.ClassPermanent, se.Class)
		}
		require.Empty(t, b.fake.requests())
	})
}

func TestClientProbe(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{"id": testProfileID}}, "meta": map[string]any{}})
		})

		require.NoError(t, b.client.Probe(context.Background()))
		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, http.MethodGet, reqs[0].Method)
		require.Equal(t, "/v2/messaging_profiles", reqs[0].Path)
		require.Equal(t, url.Values{"page[size]": {"1"}}, reqs[0].Query)
		require.Equal(t, "Bearer "+testAPIKey, reqs[0].Authorization)
	})

	tests := []struct {
		name   string
		handle http.HandlerFunc
		class  sms.Class
	}{
		{name: "Unauthorized", handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 401, "10009", "") }, class: sms.ClassPermanent},
		{name: "ServerError", handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 500, "10007", "") }, class: sms.ClassRetryable},
		{name: "Throttled", handle: func(w http.ResponseWriter, r *http.Request) { telnyxError(w, 429, "10011", "") }, class: sms.ClassThrottled},
		{name: "Garbage", handle: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }, class: sms.ClassRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.handle)
			se := requireSendError(t, b.client.Probe(context.Background()))
			require.Equal(t, tt.class, se.Class)
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("FromEnvironment", func(t *testing.T) {
		t.Parallel()
		var cfg Config
		err := envconfig.ProcessWith(context.Background(), &envconfig.Config{
			Target: &cfg,
			Lookuper: envconfig.MapLookuper(map[string]string{
				"TELNYX_API_KEY":     testAPIKey,
				"TELNYX_FROM_NUMBER": testFrom,
				"TELNYX_PUBLIC_KEY":  testPublicKey,
			}),
		})
		require.NoError(t, err)
		require.Equal(t, Config{
			APIKey: testAPIKey, FromNumber: testFrom, PublicKey: testPublicKey,
			APIBaseURL: DefaultAPIBaseURL, RequestTimeout: 10 * time.Second, DetailRecordLag: 5 * time.Minute,
		}, cfg)
		require.NoError(t, cfg.Validate())
	})

	t.Run("Validate", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			mutate func(*Config)
			ok     bool
		}{
			{name: "Valid", mutate: func(*Config) {}, ok: true},
			{name: "ProfileOnly", mutate: func(c *Config) { c.FromNumber, c.MessagingProfileID = "", testProfileID }, ok: true},
			{name: "NumberAndProfile", mutate: func(c *Config) { c.MessagingProfileID = testProfileID }, ok: true},
			{name: "ShortCode", mutate: func(c *Config) { c.FromNumber = "12345" }, ok: true},
			{name: "AlphanumericWithProfile", mutate: func(c *Config) { c.FromNumber, c.MessagingProfileID = "Clinic 1", testProfileID }, ok: true},
			{name: "NoLag", mutate: func(c *Config) { c.DetailRecordLag = 0 }, ok: true},
			{name: "NoKey", mutate: func(c *Config) { c.APIKey = "" }},
			{name: "KeyWithSpace", mutate: func(c *Config) { c.APIKey = "KEY abc" }},
			{name: "KeyWithNewline", mutate: func(c *Config) { c.APIKey = "KEY\nX-Evil: 1" }},
			{name: "NoSender", mutate: func(c *Config) { c.FromNumber = "" }},
			{name: "BadFrom", mutate: func(c *Config) { c.FromNumber = "+1-555-000" }},
			{name: "AlphanumericTooLong", mutate: func(c *Config) { c.FromNumber, c.MessagingProfileID = "ClinicClinic", testProfileID }},
			{name: "AlphanumericWithoutProfile", mutate: func(c *Config) { c.FromNumber = "Clinic" }},
			{name: "NoPublicKey", mutate: func(c *Config) { c.PublicKey = "" }},
			{name: "PublicKeyNotBase64", mutate: func(c *Config) { c.PublicKey = "not base64!" }},
			{name: "PublicKeyTooShort", mutate: func(c *Config) { c.PublicKey = base64.StdEncoding.EncodeToString(make([]byte, 31)) }},
			{name: "BadBaseURL", mutate: func(c *Config) { c.APIBaseURL = "api.telnyx.com" }},
			{name: "BaseURLWithQuery", mutate: func(c *Config) { c.APIBaseURL = "https://api.telnyx.com/?x=1" }},
			{name: "NoTimeout", mutate: func(c *Config) { c.RequestTimeout = 0 }},
			{name: "NegativeLag", mutate: func(c *Config) { c.DetailRecordLag = -time.Second }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				cfg := testConfig(DefaultAPIBaseURL)
				tt.mutate(&cfg)
				err := cfg.Validate()
				if tt.ok {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				_, err = New(cfg, nil)
				require.Error(t, err)
			})
		}
	})

	t.Run("RedactsTheKey", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(DefaultAPIBaseURL)
		for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), cfg.LogValue().String()} {
			require.NotContains(t, s, testAPIKey)
			require.Contains(t, s, testFrom)
			require.Contains(t, s, "REDACTED")
		}
	})
}

func TestMatches(t *testing.T) {
	t.Parallel()

	cutoff := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	m := outbound()
	plain := m
	plain.StatusCallbackURL = ""
	msg := func(mutate func(map[string]any)) *message {
		raw := messageJSON(testMsgID, m.To, m.Body, m.StatusCallbackURL, "sent", cutoff.Add(time.Minute))
		mutate(raw)
		b, err := json.Marshal(map[string]any{"data": raw})
		require.NoError(t, err)
		out, err := decodeMessage(b)
		require.NoError(t, err)
		return out
	}
	same := func(map[string]any) {}

	tests := []struct {
		name string
		msg  *message
		m    sms.Outbound
		want bool
	}{
		{name: "SameCallbackAndText", msg: msg(same), m: m, want: true},
		{name: "SameCallbackRedactedText", msg: msg(func(r map[string]any) { r["text"] = "" }), m: m, want: true},
		{name: "SameCallbackOtherText", msg: msg(func(r map[string]any) { r["text"] = "other" }), m: m},
		{name: "OtherCallback", msg: msg(func(r map[string]any) { r["webhook_url"] = m.StatusCallbackURL + "0" }), m: m},
		{name: "NoCallbackOnTheMessage", msg: msg(func(r map[string]any) { r["webhook_url"] = "" }), m: m, want: true},
		{name: "NoCallbackOnEitherOtherText", msg: msg(func(r map[string]any) { r["webhook_url"], r["text"] = "", "other" }), m: m},
		{name: "NoCallbackOursSameText", msg: msg(same), m: plain, want: true},
		{name: "NoCallbackOursRedactedText", msg: msg(func(r map[string]any) { r["text"] = "" }), m: plain},
		{name: "Inbound", msg: msg(func(r map[string]any) { r["direction"] = "inbound" }), m: m},
		{name: "OtherRecipient", msg: msg(func(r map[string]any) { r["to"] = []any{map[string]any{"phone_number": "+15550000000"}} }), m: m},
		{name: "NoRecipient", msg: msg(func(r map[string]any) { r["to"] = []any{} }), m: m},
		{name: "ReceivedBeforeTheWindow", msg: msg(func(r map[string]any) { r["received_at"] = cutoff.Add(-time.Second).Format(time.RFC3339) }), m: m},
		{name: "ReceivedAtUnknown", msg: msg(func(r map[string]any) { r["received_at"] = nil }), m: m, want: true},
	}
	for _, tt := range tests {
		_, ok := matches(tt.msg, tt.m, cutoff)
		require.Equal(t, tt.want, ok, tt.name)
	}
}
