package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
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
	testSID   = "ACtest"
	testToken = "authtoken"
	testFrom  = "+15005550006"
	testSMSID = "SM0123456789abcdef0123456789abcdef"
	msgsPath  = "/2010-04-01/Accounts/ACtest/Messages.json"
)

// received is one request the fake Twilio saw.
type received struct {
	Method, Path, ContentType string
	User, Password            string
	BasicAuth                 bool
	Query, Form               url.Values
}

// fakeTwilio records every request and answers with handle.
type fakeTwilio struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []received
	conns atomic.Int32
}

func (f *fakeTwilio) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.reqs...)
}

type testBundle struct {
	fake   *fakeTwilio
	client *Client
	now    time.Time
}

func testConfig(baseURL string) Config {
	return Config{
		AccountSID:     testSID,
		AuthToken:      testToken,
		FromNumber:     testFrom,
		APIBaseURL:     baseURL,
		RequestTimeout: 5 * time.Second,
		ValidityPeriod: time.Hour,
	}
}

// setup starts a fake Twilio answering with handle and a Client pointing at
// it; mutate adjusts the configuration.
func setup(t *testing.T, handle http.HandlerFunc, mutate ...func(*Config)) *testBundle {
	t.Helper()
	f := &fakeTwilio{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		rec := received{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Query: r.URL.Query(), Form: r.PostForm}
		rec.User, rec.Password, rec.BasicAuth = r.BasicAuth()
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
		StatusCallbackURL: "https://switchboard.example/webhooks/twilio/status?m=42",
	}
}

// messageJSON is a Message resource as Twilio returns it.
func messageJSON(sid, to, body, direction string, created time.Time) map[string]any {
	return map[string]any{
		"account_sid": testSID, "api_version": "2010-04-01", "body": body,
		"date_created": created.Format(time.RFC1123Z), "date_sent": nil, "date_updated": created.Format(time.RFC1123Z),
		"direction": direction, "error_code": nil, "error_message": nil, "from": testFrom,
		"messaging_service_sid": nil, "num_media": "0", "num_segments": "2", "price": nil, "price_unit": "USD",
		"sid": sid, "status": "queued", "to": to,
		"uri": "/2010-04-01/Accounts/ACtest/Messages/" + sid + ".json",
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func twilioError(w http.ResponseWriter, status, code int) {
	writeJSON(w, status, map[string]any{
		"code": code, "status": status,
		"message":   "The 'To' number " + testNumber + " is not a valid phone number.",
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
}

func created(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusCreated, messageJSON(testSMSID, r.PostForm.Get("To"), r.PostForm.Get("Body"), "outbound-api", time.Now()))
}

func requireSendError(t *testing.T, err error) *sms.SendError {
	t.Helper()
	var se *sms.SendError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "twilio", se.Provider)
	require.NotContains(t, se.Error(), strings.TrimPrefix(testNumber, "+"))
	return se
}

func TestClientSend(t *testing.T) {
	t.Parallel()

	t.Run("SendsTheMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, created)

		m := outbound()
		m.ValidityPeriod = 10 * time.Minute
		acc, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)
		require.Equal(t, sms.Accepted{ProviderMessageID: testSMSID, Status: "queued", Segments: 2}, acc)

		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		r := reqs[0]
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, msgsPath, r.Path)
		require.Equal(t, "application/x-www-form-urlencoded", r.ContentType)
		require.True(t, r.BasicAuth)
		require.Equal(t, testSID, r.User)
		require.Equal(t, testToken, r.Password)
		require.Equal(t, url.Values{
			"To":             {m.To},
			"From":           {testFrom},
			"Body":           {m.Body},
			"StatusCallback": {m.StatusCallbackURL},
			"ValidityPeriod": {"600"},
		}, r.Form)
	})

	t.Run("MessagingServiceAndDefaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, created, func(c *Config) {
			c.FromNumber = ""
			c.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef"
		})

		m := outbound()
		m.StatusCallbackURL = ""
		_, err := b.client.Send(context.Background(), m)
		require.NoError(t, err)

		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, url.Values{
			"To":                  {m.To},
			"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"},
			"Body":                {m.Body},
			"ValidityPeriod":      {"3600"},
		}, reqs[0].Form)
	})

	t.Run("BaseURLPathIsAPrefix", func(t *testing.T) {
		t.Parallel()
		var b *testBundle
		b = setup(t, created, func(c *Config) { c.APIBaseURL += "/sandbox/twilio/" })

		_, err := b.client.Send(context.Background(), outbound())
		require.NoError(t, err)
		require.Equal(t, "/sandbox/twilio"+msgsPath, b.fake.requests()[0].Path)
	})

	t.Run("ReusesConnectionsAfterErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { twilioError(w, 400, 21211) })

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
			handle: func(w http.ResponseWriter, r *http.Request) { twilioError(w, 400, 21211) },
			class:  sms.ClassRecipient, reason: sms.ReasonInvalidNumber, code: "21211", status: 400,
		},
		{
			name:   "OptedOut",
			handle: func(w http.ResponseWriter, r *http.Request) { twilioError(w, 400, 21610) },
			class:  sms.ClassRecipient, reason: sms.ReasonOptedOut, code: "21610", status: 400,
		},
		{
			name:   "BadCredentials",
			handle: func(w http.ResponseWriter, r *http.Request) { twilioError(w, 401, 20003) },
			class:  sms.ClassPermanent, code: "20003", status: 401,
		},
		{
			name: "ThrottledSeconds",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				twilioError(w, 429, 20429)
			},
			class: sms.ClassThrottled, code: "20429", status: 429, retryAfter: 7 * time.Second,
		},
		{
			name: "ThrottledHTTPDate",
			handle: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", retryAt.Format(http.TimeFormat))
				twilioError(w, 429, 20429)
			},
			class: sms.ClassThrottled, code: "20429", status: 429, retryAfter: 90 * time.Second,
		},
		{
			name:   "ServerErrorJSON",
			handle: func(w http.ResponseWriter, r *http.Request) { twilioError(w, 500, 20500) },
			class:  sms.ClassAmbiguous, code: "20500", status: 500,
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
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, "garbage{")
			},
			class: sms.ClassAmbiguous, status: 201, undecoded: true,
		},
		{
			name: "SuccessWithoutSID",
			handle: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusCreated, map[string]any{"status": "queued"})
			},
			class: sms.ClassAmbiguous, status: 201, undecoded: true,
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
			// retryable, another case); the server never answers, so the
			// test always waits exactly this long.
			c.RequestTimeout = 2 * time.Second
		})
		t.Cleanup(func() { close(release) }) // runs before the server closes

		_, err := b.client.Send(context.Background(), outbound())
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassAmbiguous, se.Class)
		require.Zero(t, se.HTTPStatus)
		require.Len(t, b.fake.requests(), 1)
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
		b := setup(t, created)

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

func TestClientFindSent(t *testing.T) {
	t.Parallel()

	// listOf answers a list request with msgs.
	listOf := func(msgs ...map[string]any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if msgs == nil {
				msgs = []map[string]any{}
			}
			writeJSON(w, http.StatusOK, map[string]any{
				"messages": msgs, "page": 0, "page_size": 20, "start": 0, "end": len(msgs) - 1,
				"first_page_uri": r.URL.RequestURI(), "uri": r.URL.RequestURI(),
				"next_page_uri": nil, "previous_page_uri": nil,
			})
		}
	}
	m := outbound()
	since := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)

	t.Run("FindsTheNewestMatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, listOf(
			messageJSON("SMnewerotherbody0000000000000000", m.To, "another body", "outbound-api", since.Add(3*time.Minute)),
			messageJSON("SMinbound000000000000000000000000", m.To, m.Body, "inbound", since.Add(2*time.Minute)),
			messageJSON("SMmatchnewest0000000000000000000", m.To, m.Body, "outbound-api", since.Add(time.Minute)),
			messageJSON("SMmatchskewed0000000000000000000", m.To, m.Body, "outbound-api", since.Add(-30*time.Second)),
			messageJSON("SMtooold000000000000000000000000", m.To, m.Body, "outbound-api", since.Add(-2*time.Minute)),
		))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Equal(t, &sms.Accepted{ProviderMessageID: "SMmatchnewest0000000000000000000", Status: "queued", Segments: 2}, acc)

		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		r := reqs[0]
		require.Equal(t, http.MethodGet, r.Method)
		require.Equal(t, msgsPath, r.Path)
		require.True(t, r.BasicAuth)
		require.Equal(t, testSID, r.User)
		require.Equal(t, testToken, r.Password)
		require.Equal(t, url.Values{"To": {m.To}, "From": {testFrom}, "PageSize": {strconv.Itoa(findPageSize)}}, r.Query)
	})

	t.Run("WithinClockSkew", func(t *testing.T) {
		t.Parallel()
		b := setup(t, listOf(messageJSON(testSMSID, m.To, m.Body, "outbound-api", since.Add(-30*time.Second))))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.NotNil(t, acc)
		require.Equal(t, testSMSID, acc.ProviderMessageID)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, listOf())

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
	})

	t.Run("BodyMismatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t, listOf(messageJSON(testSMSID, m.To, m.Body+" ", "outbound-api", since.Add(time.Minute))))

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
	})

	t.Run("OtherMessagingService", func(t *testing.T) {
		t.Parallel()
		other := messageJSON(testSMSID, m.To, m.Body, "outbound-api", since.Add(time.Minute))
		other["messaging_service_sid"] = "MGother"
		b := setup(t, listOf(other), func(c *Config) {
			c.FromNumber = ""
			c.MessagingServiceSID = "MGours"
		})

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc)
		require.Equal(t, url.Values{"To": {m.To}, "PageSize": {strconv.Itoa(findPageSize)}}, b.fake.requests()[0].Query)
	})

	// A recipient with more messages since the attempt than a look-up
	// reads: the copy may be on a page not read, so "absent" would not be
	// proven. The old look-up read 3 pages and answered none (and the
	// message was sent again).
	t.Run("AWindowTooFullToReadIsIncomplete", func(t *testing.T) {
		t.Parallel()
		var b *testBundle
		b = setup(t, func(w http.ResponseWriter, r *http.Request) {
			page := len(b.fake.requests()) - 1
			writeJSON(w, http.StatusOK, map[string]any{
				"messages":      []any{messageJSON(fmt.Sprintf("SMpage%d", page), m.To, "other", "outbound-api", since)},
				"page":          page,
				"page_size":     findPageSize,
				"next_page_uri": fmt.Sprintf("%s?To=ignored&PageSize=%d&Page=%d&PageToken=PA%d", msgsPath, findPageSize, page+1, page+1),
			})
		})

		_, err := smstest.FindOne(b.client, m, since)
		require.ErrorIs(t, err, sms.ErrLookupIncomplete)
		require.Equal(t, resilience.Healthy, sms.Outcome(err), "an answer, not a provider failure")
		reqs := b.fake.requests()
		require.Len(t, reqs, findMaxPages)
		require.Equal(t, url.Values{"To": {m.To}, "From": {testFrom}, "PageSize": {strconv.Itoa(findPageSize)}, "Page": {"2"}, "PageToken": {"PA2"}}, reqs[2].Query)
	})

	t.Run("StopsAtAMessageOlderThanTheAttempt", func(t *testing.T) {
		t.Parallel()
		var b *testBundle
		b = setup(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{
				"messages": []any{
					messageJSON("SMnewer", m.To, "other", "outbound-api", since.Add(time.Minute)),
					messageJSON("SMolder", m.To, "other", "outbound-api", since.Add(-2*clockSkew)),
				},
				"page": 0, "page_size": findPageSize,
				"next_page_uri": msgsPath + "?To=x&Page=1&PageToken=PA1",
			})
		})

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.Nil(t, acc, "absence proven: the window was read to its start")
		require.Len(t, b.fake.requests(), 1)
	})

	t.Run("StopsAtTheLastPage", func(t *testing.T) {
		t.Parallel()
		var b *testBundle
		b = setup(t, func(w http.ResponseWriter, r *http.Request) {
			page := len(b.fake.requests()) - 1
			next := any(nil)
			if page == 0 {
				next = msgsPath + "?To=x&PageSize=20&Page=1&PageToken=PA1"
			}
			msgs := []any{}
			if page == 1 {
				msgs = append(msgs, messageJSON(testSMSID, m.To, m.Body, "outbound-api", since))
			}
			writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "page": page, "page_size": 20, "next_page_uri": next})
		})

		acc, err := smstest.FindOne(b.client, m, since)
		require.NoError(t, err)
		require.NotNil(t, acc)
		require.Equal(t, testSMSID, acc.ProviderMessageID)
		require.Len(t, b.fake.requests(), 2)
	})

	t.Run("ServerErrorIsRetryable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { twilioError(w, 503, 20503) })

		_, err := smstest.FindOne(b.client, m, since)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
		require.Equal(t, 503, se.HTTPStatus)
	})

	t.Run("TimeoutIsRetryable", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, func(c *Config) { c.RequestTimeout = 50 * time.Millisecond })
		t.Cleanup(func() { close(release) })

		_, err := smstest.FindOne(b.client, m, since)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassRetryable, se.Class)
		require.NotContains(t, se.Error(), "To=")
	})

	t.Run("RedirectIsPermanent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://example.com/", http.StatusMovedPermanently)
		})

		_, err := smstest.FindOne(b.client, m, since)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassPermanent, se.Class)
		require.Equal(t, 301, se.HTTPStatus)
	})

	t.Run("Throttled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			twilioError(w, 429, 20429)
		})

		_, err := smstest.FindOne(b.client, m, since)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassThrottled, se.Class)
		require.Equal(t, 3*time.Second, se.RetryAfter)
	})
}

func TestClientFetch(t *testing.T) {
	t.Parallel()

	t.Run("Found", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			msg := messageJSON(testSMSID, testNumber, "hello", "outbound-api", time.Now())
			msg["status"] = "delivered"
			writeJSON(w, http.StatusOK, msg)
		})

		acc, err := b.client.Fetch(context.Background(), testSMSID)
		require.NoError(t, err)
		require.Equal(t, &sms.Accepted{ProviderMessageID: testSMSID, Status: "delivered", Segments: 2}, acc)
		reqs := b.fake.requests()
		require.Len(t, reqs, 1)
		require.Equal(t, http.MethodGet, reqs[0].Method)
		require.Equal(t, "/2010-04-01/Accounts/ACtest/Messages/"+testSMSID+".json", reqs[0].Path)
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(w http.ResponseWriter, r *http.Request) { twilioError(w, 404, 20404) })

		acc, err := b.client.Fetch(context.Background(), testSMSID)
		require.NoError(t, err)
		require.Nil(t, acc)
	})

	t.Run("NotFoundWithoutCodeIsAnError", func(t *testing.T) {
		t.Parallel()
		b := setup(t, http.NotFound)

		_, err := b.client.Fetch(context.Background(), testSMSID)
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassPermanent, se.Class)
	})

	t.Run("InvalidSID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, created)

		_, err := b.client.Fetch(context.Background(), "../Calls")
		se := requireSendError(t, err)
		require.Equal(t, sms.ClassPermanent, se.Class)
		require.Empty(t, b.fake.requests())
	})
}

func TestClientValidateWebhook(t *testing.T) {
	t.Parallel()

	// A published vector: twilio-go's own validator tests use it.
	const (
		fullURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
		signature = "vOEb5UThFn24KEfnOFLQY2AE5FY="
	)
	form := url.Values{
		"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"},
		"Caller": {"+14158675309"}, "From": {"+14158675309"},
		"ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
	}
	cfg := testConfig(DefaultAPIBaseURL)
	cfg.AuthToken = "12345"
	c, err := New(cfg, nil)
	require.NoError(t, err)

	require.True(t, c.ValidateWebhook(fullURL, form, signature))
	require.False(t, c.ValidateWebhook(fullURL, form, ""))
	require.False(t, c.ValidateWebhook(fullURL, form, "vOEb5UThFn24KEfnOFLQY2AE5FZ="))
	require.False(t, c.ValidateWebhook(strings.Replace(fullURL, "foo=1", "foo=2", 1), form, signature))

	tampered := url.Values{}
	for k, v := range form {
		tampered[k] = v
	}
	tampered.Set("Digits", "4321")
	require.False(t, c.ValidateWebhook(fullURL, tampered, signature))

	// Only the first value of a key is signed, as Twilio does.
	repeated := url.Values{}
	for k, v := range form {
		repeated[k] = v
	}
	repeated.Add("Digits", "9999")
	require.True(t, c.ValidateWebhook(fullURL, repeated, signature))
}

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("FromEnvironment", func(t *testing.T) {
		t.Parallel()
		var cfg Config
		err := envconfig.ProcessWith(context.Background(), &envconfig.Config{
			Target: &cfg,
			Lookuper: envconfig.MapLookuper(map[string]string{
				"TWILIO_ACCOUNT_SID": testSID,
				"TWILIO_AUTH_TOKEN":  testToken,
				"TWILIO_FROM_NUMBER": testFrom,
			}),
		})
		require.NoError(t, err)
		require.Equal(t, Config{
			AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
			APIBaseURL: DefaultAPIBaseURL, RequestTimeout: 10 * time.Second, ValidityPeriod: time.Hour,
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
			{name: "MessagingService", mutate: func(c *Config) { c.FromNumber, c.MessagingServiceSID = "", "MGabc" }, ok: true},
			{name: "NoValidity", mutate: func(c *Config) { c.ValidityPeriod = 0 }, ok: true},
			{name: "NoAccount", mutate: func(c *Config) { c.AccountSID = "" }},
			{name: "AccountNotAlphanumeric", mutate: func(c *Config) { c.AccountSID = "AC-test" }},
			{name: "NoToken", mutate: func(c *Config) { c.AuthToken = "" }},
			{name: "TokenNotAlphanumeric", mutate: func(c *Config) { c.AuthToken = "auth_token" }},
			{name: "NoSender", mutate: func(c *Config) { c.FromNumber = "" }},
			{name: "TwoSenders", mutate: func(c *Config) { c.MessagingServiceSID = "MGabc" }},
			{name: "BadBaseURL", mutate: func(c *Config) { c.APIBaseURL = "api.twilio.com" }},
			{name: "BaseURLWithQuery", mutate: func(c *Config) { c.APIBaseURL = "https://api.twilio.com/?x=1" }},
			{name: "NoTimeout", mutate: func(c *Config) { c.RequestTimeout = 0 }},
			{name: "ValidityTooLong", mutate: func(c *Config) { c.ValidityPeriod = 11 * time.Hour }},
			{name: "ValidityTooShort", mutate: func(c *Config) { c.ValidityPeriod = time.Millisecond }},
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

	t.Run("RedactsTheToken", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(DefaultAPIBaseURL)
		cfg.AuthToken = "s3cr3tt0k3n"
		for _, s := range []string{cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), cfg.LogValue().String()} {
			require.NotContains(t, s, "s3cr3tt0k3n")
			require.Contains(t, s, testSID)
		}
	})
}

func TestValiditySeconds(t *testing.T) {
	t.Parallel()

	tests := []struct {
		cfg, msg time.Duration
		want     int
	}{
		{cfg: time.Hour, msg: 0, want: 3600},
		{cfg: time.Hour, msg: 10 * time.Minute, want: 600},
		{cfg: time.Hour, msg: 2 * time.Hour, want: 3600},
		{cfg: 0, msg: 0, want: 0},
		{cfg: 0, msg: 20 * time.Hour, want: 36000},
		{cfg: time.Hour, msg: 1500 * time.Millisecond, want: 2},
		{cfg: time.Hour, msg: -time.Minute, want: 1},
	}
	for _, tt := range tests {
		c := &Client{cfg: Config{ValidityPeriod: tt.cfg}}
		require.Equal(t, tt.want, c.validitySeconds(tt.msg), "cfg %s msg %s", tt.cfg, tt.msg)
	}
}
