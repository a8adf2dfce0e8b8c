package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

const (
	testBaseURL   = "https://switchboard.example.com"
	testToken     = "authtoken"
	testUser      = "operator"
	testPassword  = "correct horse battery staple"
	testMaxBody   = 1024
	statusPath    = "/webhooks/twilio/status"
	testMessageID = "SM0123456789abcdef0123456789abcdef"
)

type testBundle struct {
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	cfg     api.Config
	handler http.Handler
	metrics http.Handler
}

// newClient is an insert-only River client on pool, as cmd builds it.
func newClient(t testing.TB, pool *pgxpool.Pool, schema string) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: schema,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	return client
}

func passwordHash(t testing.TB, password string) api.Secret {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	require.NoError(t, err)
	return api.Secret(h)
}

// setup builds a server on a fresh database; mutate adjusts its Config.
func setup(t testing.TB, mutate func(*api.Config)) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	client := newClient(t, pool, api.RiverSchema)
	cfg := api.Config{
		PublicBaseURL:        testBaseURL + "/",
		OperatorUsername:     testUser,
		OperatorPasswordHash: passwordHash(t, testPassword),
		WebhookMaxBodyBytes:  testMaxBody,
		TwilioAuthToken:      testToken,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := api.New(cfg, pool, client, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, srv.Start(t.Context()))
	return &testBundle{pool: pool, client: client, cfg: cfg, handler: srv.Handler(), metrics: srv.MetricsHandler()}
}

// sign computes X-Twilio-Signature the way Twilio documents it, independently
// of twilio-go: HMAC-SHA1 over the full URL followed by every parameter's
// name and first value, sorted by name, base64-encoded.
func sign(token, fullURL string, form url.Values) string {
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range names {
		b.WriteString(name)
		b.WriteString(form[name][0])
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func statusForm(status string) url.Values {
	return url.Values{
		"MessageSid":    {testMessageID},
		"SmsSid":        {testMessageID},
		"MessageStatus": {status},
		"SmsStatus":     {status},
		"AccountSid":    {"ACtest"},
		"ApiVersion":    {"2010-04-01"},
		"From":          {"+15005550006"},
		"To":            {"+15005550009"},
	}
}

// post sends body to target with signature sig ("" for none).
func post(h http.Handler, target, body, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// postSigned sends form to target, signed for the public URL.
func postSigned(h http.Handler, target string, form url.Values) *httptest.ResponseRecorder {
	return post(h, target, form.Encode(), sign(testToken, testBaseURL+target, form))
}

type counts struct{ webhooks, jobs int }

func countRows(t *testing.T, pool *pgxpool.Pool) counts {
	t.Helper()
	var c counts
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM switchboard.inbound_webhooks").Scan(&c.webhooks))
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM switchboard.river_job WHERE kind = 'webhook_process'").Scan(&c.jobs))
	return c
}

func TestTwilioStatus(t *testing.T) {
	t.Parallel()

	t.Run("SignedCallbackIsStoredWithItsJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		form := statusForm("delivered")
		target := statusPath + "?m=42"

		rec := postSigned(b.handler, target, form)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Empty(t, rec.Body.String())

		var (
			id                                  int64
			provider, eventID, eventType, state string
			rawBody                             []byte
		)
		require.NoError(t, b.pool.QueryRow(t.Context(), `
			SELECT id, provider, provider_event_id, event_type, state, raw_body
			FROM switchboard.inbound_webhooks`).Scan(&id, &provider, &eventID, &eventType, &state, &rawBody))
		require.Equal(t, "twilio", provider)
		require.Equal(t, testMessageID+":delivered", eventID)
		require.Equal(t, "message.status", eventType)
		require.Equal(t, "pending", state)
		require.Equal(t, form.Encode(), string(rawBody))

		var (
			kind, queue, jobState string
			args                  []byte
		)
		require.NoError(t, b.pool.QueryRow(t.Context(), `
			SELECT kind, queue, state, args FROM switchboard.river_job`).Scan(&kind, &queue, &jobState, &args))
		require.Equal(t, jobs.KindWebhookProcess, kind)
		require.Equal(t, jobs.QueueInbound, queue)
		require.Equal(t, "available", jobState)
		var decoded jobs.WebhookProcessArgs
		require.NoError(t, json.Unmarshal(args, &decoded))
		require.Equal(t, id, decoded.WebhookID)
	})

	t.Run("ReplayIsANoOp", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		form := statusForm("sent")
		require.Equal(t, http.StatusOK, postSigned(b.handler, statusPath, form).Code)
		require.Equal(t, http.StatusOK, postSigned(b.handler, statusPath, form).Code)
		require.Equal(t, counts{webhooks: 1, jobs: 1}, countRows(t, b.pool))
	})

	t.Run("EachStatusOfAMessageIsItsOwnEvent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		require.Equal(t, http.StatusOK, postSigned(b.handler, statusPath, statusForm("sent")).Code)
		require.Equal(t, http.StatusOK, postSigned(b.handler, statusPath, statusForm("delivered")).Code)
		require.Equal(t, counts{webhooks: 2, jobs: 2}, countRows(t, b.pool))
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		form := statusForm("delivered")
		goodSig := sign(testToken, testBaseURL+statusPath, form)
		tampered := statusForm("delivered")
		tampered.Set("ErrorCode", "30003")
		noStatus := statusForm("delivered")
		noStatus.Del("MessageStatus")
		noSID := statusForm("delivered")
		noSID.Del("MessageSid")
		big := statusForm("delivered")
		big.Set("Body", strings.Repeat("x", testMaxBody))

		tests := []struct {
			name   string
			target string
			body   string
			sig    string
			want   int
		}{
			{"TamperedBody", statusPath, tampered.Encode(), goodSig, http.StatusForbidden},
			{"WrongToken", statusPath, form.Encode(), sign("othertoken", testBaseURL+statusPath, form), http.StatusForbidden},
			{"MissingSignature", statusPath, form.Encode(), "", http.StatusForbidden},
			{"GarbageSignature", statusPath, form.Encode(), "bm90IGEgc2lnbmF0dXJl", http.StatusForbidden},
			{"SignedForHostHeader", statusPath, form.Encode(), sign(testToken, "http://example.com"+statusPath, form), http.StatusForbidden},
			{"SignedWithoutQuery", statusPath + "?m=42", form.Encode(), goodSig, http.StatusForbidden},
			{"MissingMessageStatus", statusPath, noStatus.Encode(), sign(testToken, testBaseURL+statusPath, noStatus), http.StatusBadRequest},
			{"MissingMessageSid", statusPath, noSID.Encode(), sign(testToken, testBaseURL+statusPath, noSID), http.StatusBadRequest},
			{"UnparsableForm", statusPath, "MessageSid=%zz", sign(testToken, testBaseURL+statusPath, url.Values{}), http.StatusBadRequest},
			{"OversizedBody", statusPath, big.Encode(), sign(testToken, testBaseURL+statusPath, big), http.StatusRequestEntityTooLarge},
		}
		for _, tt := range tests {
			rec := post(b.handler, tt.target, tt.body, tt.sig)
			require.Equal(t, tt.want, rec.Code, tt.name)
		}
		require.Equal(t, counts{}, countRows(t, b.pool))
	})

	t.Run("OnlyPost", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, statusPath, nil))
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	})

	t.Run("UnavailableWithoutAuthToken", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.TwilioAuthToken = "" })
		form := statusForm("delivered")
		// Signed with an empty key: must not be accepted as valid.
		rec := post(b.handler, statusPath, form.Encode(), sign("", testBaseURL+statusPath, form))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, counts{}, countRows(t, b.pool))
	})

	t.Run("DatabaseErrorIs500", func(t *testing.T) {
		t.Parallel()
		pool, dbURL := dbtest.NewPool(t)
		broken, err := pgxpool.New(t.Context(), dbURL)
		require.NoError(t, err)
		client := newClient(t, broken, api.RiverSchema)
		srv, err := api.New(api.Config{PublicBaseURL: testBaseURL, TwilioAuthToken: testToken}, broken, client, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		broken.Close()

		rec := postSigned(srv.Handler(), statusPath, statusForm("delivered"))
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.Equal(t, counts{}, countRows(t, pool))
	})

	t.Run("MetricsCountResults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		require.Equal(t, http.StatusOK, postSigned(b.handler, statusPath, statusForm("queued")).Code)

		rec := httptest.NewRecorder()
		b.metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		body := rec.Body.String()
		for _, result := range []string{"accepted", "duplicate", "bad_signature", "malformed", "too_large", "error"} {
			require.Contains(t, body, `switchboard_webhooks_total{provider="twilio",result="`+result+`",route="/webhooks/twilio/status"}`)
		}
		require.NotContains(t, body, `switchboard_webhooks_total{provider="twilio",result="accepted",route="/webhooks/twilio/status"} 0`)
	})
}

func TestProbes(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, http.StatusOK, rec.Code, path)
	}
}

func TestRiverUI(t *testing.T) {
	t.Parallel()

	get := func(h http.Handler, target, user, password string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		if user != "" || password != "" {
			req.SetBasicAuth(user, password)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("Unauthorized", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		tests := []struct {
			name, target, user, password string
		}{
			{"NoCredentials", "/riverui/", "", ""},
			{"WrongPassword", "/riverui/", testUser, "wrong"},
			{"WrongUsername", "/riverui/", "admin", testPassword},
			{"APIWithoutCredentials", "/riverui/api/jobs?state=available", "", ""},
			{"BarePrefix", "/riverui", "", ""},
		}
		for _, tt := range tests {
			rec := get(b.handler, tt.target, tt.user, tt.password)
			require.Equal(t, http.StatusUnauthorized, rec.Code, tt.name)
			require.Equal(t, `Basic realm="switchboard"`, rec.Header().Get("WWW-Authenticate"), tt.name)
		}
	})

	t.Run("OperatorSeesTheUI", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		for range 2 { // the second request takes the verified-password path
			rec := get(b.handler, "/riverui/", testUser, testPassword)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Contains(t, rec.Header().Get("Content-Type"), "text/html")
		}
		rec := get(b.handler, "/riverui/", testUser, "wrong")
		require.Equal(t, http.StatusUnauthorized, rec.Code, "a cached password must not open the door to others")
	})

	t.Run("APIListsJobsOfTheSwitchboardSchema", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		res, err := b.client.Insert(t.Context(), jobs.WebhookProcessArgs{WebhookID: 7}, nil)
		require.NoError(t, err)

		rec := get(b.handler, "/riverui/api/jobs?state=available", testUser, testPassword)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var list struct {
			Data []struct {
				ID    int64  `json:"id"`
				Kind  string `json:"kind"`
				Queue string `json:"queue"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
		require.Len(t, list.Data, 1)
		require.Equal(t, res.Job.ID, list.Data[0].ID)
		require.Equal(t, jobs.KindWebhookProcess, list.Data[0].Kind)
		require.Equal(t, jobs.QueueInbound, list.Data[0].Queue)
	})

	t.Run("CrossSiteChangesAreRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		res, err := b.client.Insert(t.Context(), jobs.WebhookProcessArgs{WebhookID: 8}, nil)
		require.NoError(t, err)
		cancel := func(site string) int {
			body := fmt.Sprintf(`{"ids":["%d"]}`, res.Job.ID)
			req := httptest.NewRequest(http.MethodPost, "/riverui/api/jobs/cancel", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Sec-Fetch-Site", site)
			req.SetBasicAuth(testUser, testPassword)
			rec := httptest.NewRecorder()
			b.handler.ServeHTTP(rec, req)
			return rec.Code
		}
		require.Equal(t, http.StatusForbidden, cancel("cross-site"))
		var state string
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT state FROM switchboard.river_job WHERE id = $1", res.Job.ID).Scan(&state))
		require.Equal(t, "available", state)

		require.Equal(t, http.StatusOK, cancel("same-origin"))
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT state FROM switchboard.river_job WHERE id = $1", res.Job.ID).Scan(&state))
		require.Equal(t, "cancelled", state)
	})

	t.Run("UnavailableWithoutOperatorCredentials", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.OperatorUsername, c.OperatorPasswordHash = "", "" })
		rec := get(b.handler, "/riverui/", "", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body, err := io.ReadAll(rec.Body)
		require.NoError(t, err)
		require.Equal(t, "operator credentials not configured\n", string(body))
		rec = get(b.handler, "/riverui/api/jobs", "anyone", "anything")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	})

	t.Run("UnavailableWithAUsernameButNoHash", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.OperatorUsername, c.OperatorPasswordHash = "operator", "" })
		rec := get(b.handler, "/riverui/", "operator", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	})
}

func TestRun(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", PublicBaseURL: testBaseURL}, pool, newClient(t, pool, api.RiverSchema), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	require.NoError(t, <-done, "Run returns nil after a clean shutdown")
}
