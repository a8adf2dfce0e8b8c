package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	googlehealthsandbox "github.com/switchboard-health/switchboard/internal/sandbox/googlehealth"
	"github.com/switchboard-health/switchboard/internal/secrets"
	"github.com/switchboard-health/switchboard/internal/wearables"
	"github.com/switchboard-health/switchboard/jobs"
)

const (
	hookPath    = "/webhooks/google-health"
	samplesPath = "/v1/apple-health/samples"
	hookSecret  = "Bearer hook-secret"
)

type wBundle struct {
	pool    *pgxpool.Pool
	sb      *googlehealthsandbox.Server
	handler http.Handler
	token   string
}

func wsetup(t *testing.T) *wBundle { t.Helper(); return wsetupWith(t, nil, nil) }

// wsetupWith is wsetup with the api and wearables on a pool whose
// statements tracer sees (nil: none), and the api config mutated.
func wsetupWith(t *testing.T, tracer pgx.QueryTracer, mutate func(*api.Config)) *wBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	servePool := pool
	if tracer != nil {
		pc, err := pgxpool.ParseConfig(pool.Config().ConnString())
		require.NoError(t, err)
		pc.ConnConfig.Tracer = tracer
		servePool, err = pgxpool.NewWithConfig(t.Context(), pc)
		require.NoError(t, err)
		t.Cleanup(servePool.Close)
	}
	sb := googlehealthsandbox.New(googlehealthsandbox.Config{ClientID: "cid", ClientSecret: "cs", WebhookSecret: hookSecret}, nil)
	keyset := filepath.Join(t.TempDir(), "keyset.json")
	require.NoError(t, sb.WriteKeyset(keyset))
	var k [32]byte
	_, _ = rand.Read(k[:])
	keys, err := secrets.Parse("k1:" + base64.StdEncoding.EncodeToString(k[:]))
	require.NoError(t, err)
	w, err := wearables.NewAPI(wearables.Deps{Pool: servePool, Keys: keys, Config: wearables.Config{
		PublicBaseURL: testBaseURL, UploadMaxBytes: 4096,
		Google: googlehealth.Config{ClientID: "cid", ClientSecret: "cs", WebhookSecret: hookSecret, WebhookKeyset: keyset, WebhookRequireAuthorization: true},
	}})
	require.NoError(t, err)
	acfg := api.Config{PublicBaseURL: testBaseURL, WebhookMaxBodyBytes: 4096, Wearables: w}
	if mutate != nil {
		mutate(&acfg)
	}
	srv, err := api.New(acfg, servePool, newClient(t, servePool, api.RiverSchema), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, srv.Start(t.Context()))
	b := &wBundle{pool: pool, sb: sb, handler: srv.Handler()}
	_, err = pool.Exec(t.Context(), "SELECT switchboard.upsert_patient('p-1')")
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		b.token, err = jobs.WearablesUploadToken(t.Context(), tx, "p-1")
		return err
	}))
	return b
}

func (b *wBundle) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(t.Context(), sql).Scan(&n))
	return n
}

func (b *wBundle) do(method, path string, body []byte, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return rec
}

func TestGoogleHealthWebhook(t *testing.T) {
	t.Parallel()
	body := googlehealthsandbox.Notification("hu-1", "UPSERT", "steps", time.Now().Add(-time.Hour), time.Now())
	stored := func(b *wBundle) int {
		return b.count(t, "SELECT count(*) FROM switchboard.inbound_webhooks") + b.count(t, "SELECT count(*) FROM switchboard.river_job")
	}

	t.Run("HandshakeIsAnsweredAsGoogleExpects", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		v := []byte(`{"type":"verification"}`)
		require.Equal(t, http.StatusCreated, b.do(http.MethodPost, hookPath, v, map[string]string{"Authorization": hookSecret}).Code)
		require.Equal(t, http.StatusUnauthorized, b.do(http.MethodPost, hookPath, v, nil).Code)
		require.Equal(t, http.StatusUnauthorized, b.do(http.MethodPost, hookPath, v, map[string]string{"Authorization": "Bearer wrong"}).Code)
		require.Zero(t, stored(b))
	})

	t.Run("ValidSignatureIsStoredWithItsJobAndAnswered204", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		h := map[string]string{"Authorization": hookSecret, googlehealth.SignatureHeader: b.sb.Sign(body)}
		rec := b.do(http.MethodPost, hookPath, body, h)
		require.Equal(t, http.StatusNoContent, rec.Code)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.inbound_webhooks WHERE provider = 'google_health'"))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'wearable_notification'"))
		// Redelivered: deduped by body hash, still 204.
		require.Equal(t, http.StatusNoContent, b.do(http.MethodPost, hookPath, body, h).Code)
		require.Equal(t, 2, stored(b))
		// The legacy header name works too.
		other := googlehealthsandbox.Notification("hu-1", "DELETE", "steps", time.Now().Add(-time.Hour), time.Now())
		require.Equal(t, http.StatusNoContent, b.do(http.MethodPost, hookPath, other, map[string]string{"Authorization": hookSecret, googlehealth.LegacySignatureHeader: b.sb.Sign(other)}).Code)
	})

	t.Run("BadSignaturesAreRefusedAndNothingStored", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		otherKey := googlehealthsandbox.New(googlehealthsandbox.Config{}, nil)
		tampered := bytes.Replace(body, []byte("UPSERT"), []byte("DELETE"), 1)
		for name, h := range map[string]map[string]string{
			"TamperedBody":     {"Authorization": hookSecret, googlehealth.SignatureHeader: b.sb.Sign(tampered[:len(tampered)-1])},
			"WrongKey":         {"Authorization": hookSecret, googlehealth.SignatureHeader: otherKey.Sign(body)},
			"MissingSignature": {"Authorization": hookSecret},
			"MissingSecret":    {googlehealth.SignatureHeader: b.sb.Sign(body)},
			"WrongSecret":      {"Authorization": "Bearer nope", googlehealth.SignatureHeader: b.sb.Sign(body)},
			"Garbage":          {"Authorization": hookSecret, googlehealth.SignatureHeader: "!!not base64"},
		} {
			payload := body
			if name == "TamperedBody" {
				payload = tampered
			}
			rec := b.do(http.MethodPost, hookPath, payload, h)
			require.Equal(t, http.StatusForbidden, rec.Code, name)
		}
		require.Zero(t, stored(b))
	})

	t.Run("OversizedAndMalformed", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		big := bytes.Repeat([]byte("x"), 5000)
		require.Equal(t, http.StatusRequestEntityTooLarge, b.do(http.MethodPost, hookPath, big, map[string]string{"Authorization": hookSecret}).Code)
		junk := []byte(`{"data":{"foo":1}}`)
		require.Equal(t, http.StatusBadRequest, b.do(http.MethodPost, hookPath, junk, map[string]string{"Authorization": hookSecret, googlehealth.SignatureHeader: b.sb.Sign(junk)}).Code)
		require.Zero(t, stored(b))
	})
}

const hrSample = `{"uuid":"%s","type":"HKQuantityTypeIdentifierHeartRate","value":72,"unit":"count/min","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00","device":{"name":"Apple Watch","manufacturer":"Apple Inc.","model":"Watch"}}`

func sample(uuid string) string { return strings.Replace(hrSample, "%s", uuid, 1) }

func TestAppleHealthSamples(t *testing.T) {
	t.Parallel()
	good := []byte(`{"samples":[` + sample("11111111-1111-1111-1111-111111111111") + `,` +
		`{"uuid":"22222222-2222-2222-2222-222222222222","type":"HKQuantityTypeIdentifierOxygenSaturation","value":0.85,"unit":"%","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"},` +
		`{"uuid":"33333333-3333-3333-3333-333333333333","type":"HKQuantityTypeIdentifierHeartRate","value":900,"unit":"count/min","startDate":"2026-11-25T08:00:01-05:00","endDate":"2026-11-25T08:00:01-05:00"}` +
		`],"deleted":[]}`)
	auth := func(tok string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	}
	nothing := func(t *testing.T, b *wBundle) {
		require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.wearable_samples"))
		require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.apple_health_uploads"))
		require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.river_job"))
	}

	t.Run("AcceptedUploadIsStoredWithItsJobAndDuplicatesAreIdempotent", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		rec := b.do(http.MethodPost, samplesPath, good, auth(b.token))
		require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
		var res wearables.UploadResult
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
		require.Equal(t, 3, res.New)
		require.Equal(t, 1, res.Rejected, "900 /min is kept with a rejection reason")
		require.NotZero(t, res.JobID)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.wearable_samples WHERE rejection_reason = 'out_of_range'"))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.wearable_samples WHERE kind = 'spo2' AND value = 85 AND interpretation = 'L'"))

		rec = b.do(http.MethodPost, samplesPath, good, auth(b.token))
		require.Equal(t, http.StatusAccepted, rec.Code)
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
		require.Zero(t, res.New)
		require.Equal(t, 3, res.Duplicate)
		require.Equal(t, 3, b.count(t, "SELECT count(*) FROM switchboard.wearable_samples"))
	})

	t.Run("WrongTokenIs401", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		require.Equal(t, http.StatusUnauthorized, b.do(http.MethodPost, samplesPath, good, auth("nope")).Code)
		require.Equal(t, http.StatusUnauthorized, b.do(http.MethodPost, samplesPath, good, nil).Code)
		nothing(t, b)
	})

	t.Run("OversizedIs413", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		var parts []string
		for range 40 {
			parts = append(parts, sample("11111111-1111-1111-1111-111111111111"))
		}
		big := []byte(`{"samples":[` + strings.Join(parts, ",") + `]}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, b.do(http.MethodPost, samplesPath, big, auth(b.token)).Code)
		nothing(t, b)
	})

	t.Run("MalformedAndUnknownTypesAre400WithNothingPartial", func(t *testing.T) {
		t.Parallel()
		b := wsetup(t)
		for name, body := range map[string]string{
			"NotJSON":      `{"samples":[`,
			"BadUUID":      `{"samples":[` + sample("11111111-1111-1111-1111-111111111111") + `,` + sample("nope") + `]}`,
			"BadDate":      `{"samples":[` + strings.Replace(sample("11111111-1111-1111-1111-111111111111"), "2026-11-25T08:00:00-05:00", "yesterday", 1) + `]}`,
			"BadUnit":      `{"samples":[` + strings.Replace(sample("11111111-1111-1111-1111-111111111111"), "count/min", "bpm", 1) + `]}`,
			"UnknownField": `{"samples":[],"extra":1}`,
			"Empty":        `{"samples":[],"deleted":[]}`,
		} {
			rec := b.do(http.MethodPost, samplesPath, []byte(body), auth(b.token))
			require.Equal(t, http.StatusBadRequest, rec.Code, name)
		}
		unknown := `{"samples":[` + sample("11111111-1111-1111-1111-111111111111") + `,{"uuid":"22222222-2222-2222-2222-222222222222","type":"HKQuantityTypeIdentifierBodyTemperature","value":37,"unit":"degC","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"}]}`
		rec := b.do(http.MethodPost, samplesPath, []byte(unknown), auth(b.token))
		require.Equal(t, http.StatusBadRequest, rec.Code)
		var e struct {
			UnknownTypes []string `json:"unknown_types"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
		require.Equal(t, []string{"HKQuantityTypeIdentifierBodyTemperature"}, e.UnknownTypes)
		nothing(t, b)
	})
}

// TestAppleHealthBodyMassKeepsSourcePrecision: 154 lb was stored as
// 69.85322498000001 kg (float64 arithmetic). The conversion is exact decimal
// keeping the source's precision, and 154 lb is stored beside it.
func TestAppleHealthBodyMassKeepsSourcePrecision(t *testing.T) {
	t.Parallel()
	b := wsetup(t)
	body := []byte(`{"samples":[{"uuid":"44444444-4444-4444-4444-444444444444","type":"HKQuantityTypeIdentifierBodyMass","value":154,"unit":"lb","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"},` +
		`{"uuid":"55555555-5555-5555-5555-555555555555","type":"HKQuantityTypeIdentifierOxygenSaturation","value":0.97,"unit":"%","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"}]}`)
	rec := b.do(http.MethodPost, samplesPath, body, map[string]string{"Authorization": "Bearer " + b.token})
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	var value, unit, srcValue, srcUnit string
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT value::text, unit, source_value::text, source_unit
		FROM switchboard.wearable_samples WHERE kind = 'weight'`).Scan(&value, &unit, &srcValue, &srcUnit))
	require.Equal(t, "69.85", value, "no invented digits")
	require.Equal(t, "kg", unit)
	require.Equal(t, "154", srcValue)
	require.Equal(t, "lb", srcUnit)
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT value::text, source_value::text, source_unit
		FROM switchboard.wearable_samples WHERE kind = 'spo2'`).Scan(&value, &srcValue, &srcUnit))
	require.Equal(t, "97", value)
	require.Equal(t, "0.97", srcValue)
	require.Equal(t, "%", srcUnit)
}

// TestConnectLinkRoutes: GET shows the page and spends nothing (link
// previews), POST spends the link and sets the browser cookie, a second
// POST is 410, a callback without the cookie is 403.
func TestConnectLinkRoutes(t *testing.T) {
	t.Parallel()
	b := wsetup(t)
	var link string
	require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		var err error
		link, err = jobs.WearablesConnectLink(t.Context(), tx, "p-1", 0)
		return err
	}))
	const start = "/oauth/google-health/start"
	for range 2 {
		rec := b.do(http.MethodGet, start+"?link="+link, nil, nil)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Contains(t, rec.Body.String(), `method="post"`)
		require.Empty(t, rec.Result().Cookies())
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	rec := b.do(http.MethodPost, start, []byte("link="+link), form)
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	cookies := rec.Result().Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	require.True(t, c.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, c.SameSite)
	require.Equal(t, "/", c.Path)
	require.Empty(t, c.Domain)
	if strings.HasPrefix(testBaseURL, "https://") {
		require.True(t, c.Secure)
		require.True(t, strings.HasPrefix(c.Name, "__Host-"))
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	require.NoError(t, err)
	state := loc.Query().Get("state")
	require.NotEmpty(t, state)

	require.Equal(t, http.StatusGone, b.do(http.MethodPost, start, []byte("link="+link), form).Code, "reuse")
	require.Equal(t, http.StatusGone, b.do(http.MethodGet, start+"?link="+link, nil, nil).Code)
	require.Equal(t, http.StatusForbidden, b.do(http.MethodPost, start, []byte("link=nope"), form).Code)

	// The callback from a browser without the cookie (another device, a
	// forwarded URL) is refused before anything is spent.
	rec = b.do(http.MethodGet, "/oauth/google-health/callback?state="+url.QueryEscape(state)+"&code=x", nil, nil)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.oauth_states WHERE used_at IS NOT NULL"))
}

// statements counts the SQL statements a pool sends, and the writes among
// them (INSERT, UPDATE, DELETE, or a function call that may write).
type statements struct{ all, writes atomic.Int64 }

func (c *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.all.Add(1)
	sql := strings.ToUpper(d.SQL)
	for _, w := range []string{"INSERT ", "UPDATE ", "DELETE ", "SELECT SWITCHBOARD."} {
		if strings.Contains(sql, w) {
			c.writes.Add(1)
			break
		}
	}
	return ctx
}

func (*statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestAppleHealthBadUploadsWriteNothingAndAreThrottled: every upload with a
// wrong token used to run UPDATE … RETURNING, unthrottled. Now the check is
// one read-only SELECT, and a source past its failed tries is answered 429
// without any database work. The 1,000-upload figure in the README is this
// test's log line (go test -run TestAppleHealthBadUploads -v ./internal/api/).
func TestAppleHealthBadUploadsWriteNothingAndAreThrottled(t *testing.T) {
	t.Parallel()
	var st statements
	// Refill an hour: no try comes back during the test, whatever the load.
	b := wsetupWith(t, &st, func(c *api.Config) { c.UploadAuth = api.UploadAuthConfig{FailuresPerIP: 20, Refill: time.Hour} })
	body := []byte(`{"samples":[` + sample("11111111-1111-1111-1111-111111111111") + `]}`)
	st.all.Store(0)
	st.writes.Store(0)
	codes := map[int]int{}
	const n = 1000
	for i := range n {
		rec := b.do(http.MethodPost, samplesPath, body, map[string]string{"Authorization": fmt.Sprintf("Bearer wrong-%d", i)})
		codes[rec.Code]++
	}
	t.Logf("%d uploads with wrong tokens from one address: %v; SQL statements %d, writes %d", n, codes, st.all.Load(), st.writes.Load())
	require.Zero(t, st.writes.Load(), "a wrong token writes nothing")
	require.Equal(t, 20, codes[http.StatusUnauthorized])
	require.Equal(t, n-20, codes[http.StatusTooManyRequests])
	require.EqualValues(t, 20, st.all.Load(), "throttled uploads never reach the database")
	require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.upload_tokens WHERE last_used_at IS NOT NULL"))

	// Another address is not affected; a right token from it works.
	req := httptest.NewRequest(http.MethodPost, samplesPath, bytes.NewReader(body))
	req.RemoteAddr = "192.0.2.77:5555"
	req.Header.Set("Authorization", "Bearer "+b.token)
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.upload_tokens WHERE last_used_at IS NOT NULL"))
}

// TestAppleHealthUploadTokenExpiryAndRotation: tokens never expired. Now a
// token lives 90 days; issuing a new one leaves the old working for an
// hour of grace, then only the new one works. Time is moved in the
// database, not waited for.
func TestAppleHealthUploadTokenExpiryAndRotation(t *testing.T) {
	t.Parallel()
	b := wsetup(t)
	body := []byte(`{"samples":[` + sample("11111111-1111-1111-1111-111111111111") + `]}`)
	upload := func(tok string) int {
		return b.do(http.MethodPost, samplesPath, body, map[string]string{"Authorization": "Bearer " + tok}).Code
	}
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.upload_tokens WHERE expires_at - created_at = interval '90 days'"))
	require.Equal(t, http.StatusAccepted, upload(b.token))

	// Rotation: a new token; the old one works during the grace hour.
	var fresh string
	require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		var err error
		fresh, err = jobs.WearablesUploadToken(t.Context(), tx, "p-1")
		return err
	}))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM switchboard.upload_tokens
		WHERE revoked_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'`))
	require.Equal(t, http.StatusAccepted, upload(b.token), "old token in its grace hour")
	require.Equal(t, http.StatusAccepted, upload(fresh))
	// The grace hour passes.
	_, err := b.pool.Exec(t.Context(), "UPDATE switchboard.upload_tokens SET revoked_at = now() - interval '1 second' WHERE revoked_at IS NOT NULL")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, upload(b.token), "old token after its grace")
	require.Equal(t, http.StatusAccepted, upload(fresh))
	// 90 days pass.
	_, err = b.pool.Exec(t.Context(), "UPDATE switchboard.upload_tokens SET expires_at = now() - interval '1 second'")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, upload(fresh), "expired token")
}
