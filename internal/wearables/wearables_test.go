package wearables_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	googlehealthsandbox "github.com/switchboard-health/switchboard/internal/sandbox/googlehealth"
	"github.com/switchboard-health/switchboard/internal/secrets"
	"github.com/switchboard-health/switchboard/internal/wearables"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

const (
	testUser     = "hu-111"
	patientRef   = "patient-1"
	patientPhone = "+15005550100"
)

type testBundle struct {
	pool   *pgxpool.Pool
	sb     *googlehealthsandbox.Server
	sbURL  string
	deps   wearables.Deps
	api    *wearables.API
	client *river.Client[pgx.Tx] // insert-only
}

func newKeys(t *testing.T) *secrets.Keyring {
	t.Helper()
	var k [32]byte
	_, _ = rand.Read(k[:])
	keys, err := secrets.Parse("k1:" + base64.StdEncoding.EncodeToString(k[:]))
	require.NoError(t, err)
	return keys
}

func setup(t *testing.T, mutate func(*wearables.Config)) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	sb := googlehealthsandbox.New(googlehealthsandbox.Config{ClientID: "cid", ClientSecret: "csecret", WebhookSecret: "Bearer hook"}, nil)
	sb.AddUser(googlehealthsandbox.User{HealthUserID: testUser, LegacyUserID: "ABC123", TimeZone: "America/New_York"})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	cfg := wearables.Config{
		PublicBaseURL: "https://switchboard.example.com",
		BackfillDays:  2,
		Google: googlehealth.Config{
			ClientID: "cid", ClientSecret: "csecret",
			APIBaseURL: srv.URL + "/v4", AuthURL: srv.URL + "/o/oauth2/v2/auth",
			TokenURL: srv.URL + "/token", RevokeURL: srv.URL + "/revoke",
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	limits, err := worker.UnavailableLimits(t.Context(), pool)
	require.NoError(t, err)
	deps := wearables.Deps{Pool: pool, Registry: resilience.New(nil), Limiter: ratelimit.New(pool), Keys: newKeys(t), Config: cfg,
		Logger: slog.New(slog.DiscardHandler), UnavailableLimits: limits}
	a, err := wearables.NewAPI(deps)
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: "switchboard", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	exec(t, pool, "SELECT switchboard.upsert_patient($1, phone_e164 => $2)", patientRef, patientPhone)
	return &testBundle{pool: pool, sb: sb, sbURL: srv.URL, deps: deps, api: a, client: client}
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (b *testBundle) link(t *testing.T) string {
	t.Helper()
	var tok string
	require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		var err error
		tok, err = jobs.WearablesConnectLink(t.Context(), tx, patientRef, 0)
		return err
	}))
	return tok
}

// consent runs the browser's part: start → sandbox consent → the redirect
// to the callback, returning the callback's query.
func (b *testBundle) consent(t *testing.T) (url.Values, string) {
	t.Helper()
	return b.consentWith(t, b.link(t))
}

// consentWith is consent for a given link; it also returns the browser cookie.
func (b *testBundle) consentWith(t *testing.T, link string) (url.Values, string) {
	t.Helper()
	authURL, cookie, err := b.api.StartURL(t.Context(), link)
	require.NoError(t, err)
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	q := u.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.Equal(t, "offline", q.Get("access_type"))
	require.Equal(t, "consent", q.Get("prompt"))
	require.NotEmpty(t, q.Get("state"))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	back, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "/oauth/google-health/callback", back.Path)
	return back.Query(), cookie
}

func (b *testBundle) connect(t *testing.T) int64 {
	t.Helper()
	q, ck := b.consent(t)
	id, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), q.Get("error"), ck)
	require.NoError(t, err)
	return id
}

// runJobs works the wearables queue with a real River client until no job
// is left waiting (bounded; a test that needs longer fails).
func (b *testBundle) runJobs(t *testing.T) {
	t.Helper()
	workers := river.NewWorkers()
	periodic, err := wearables.Register(t.Context(), workers, b.deps)
	require.NoError(t, err)
	require.Len(t, periodic, 1)
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		Schema: "switchboard", Queues: map[string]river.QueueConfig{jobs.QueueWearables: {MaxWorkers: 8}},
		Workers: workers, FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler), TestOnly: true, LeaderElectionDisabled: true,
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, client.Start(ctx))
	defer func() { require.NoError(t, client.Stop(ctx)) }()
	// Bounded by progress, not by the clock alone: a busy machine (-race,
	// other tests) may take long, but 30 s with no job running (each is
	// bounded by its own timeout) and none finishing means something is stuck.
	deadline := time.Now().Add(30 * time.Second)
	lastProgress := -1
	for {
		n := count(t, b.pool, `SELECT count(*) FROM switchboard.river_job WHERE queue = 'wearables'
			AND (state IN ('available', 'running', 'retryable') OR (state = 'scheduled' AND scheduled_at < now() + interval '2 seconds'))`)
		if n == 0 {
			return
		}
		progress := count(t, b.pool, `SELECT count(*) FROM switchboard.river_job WHERE state = 'completed'`)
		running := count(t, b.pool, `SELECT count(*) FROM switchboard.river_job WHERE state = 'running'`)
		if progress != lastProgress || running > 0 {
			lastProgress, deadline = progress, time.Now().Add(30*time.Second)
		}
		if !time.Now().Before(deadline) {
			rows, _ := b.pool.Query(context.Background(), `SELECT kind, state::text, attempt, (scheduled_at - now())::text || args::text FROM switchboard.river_job
				WHERE queue = 'wearables' AND state NOT IN ('completed', 'cancelled', 'discarded') LIMIT 5`)
			for rows.Next() {
				var kind, state, errs string
				var attempt int
				_ = rows.Scan(&kind, &state, &attempt, &errs)
				t.Logf("waiting job %s %s attempt %d errors %.600s", kind, state, attempt, errs)
			}
			rows.Close()
			t.Fatalf("wearables jobs still waiting: %d", n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestOAuth(t *testing.T) {
	t.Parallel()

	t.Run("ConsentActivatesConnectionWithSealedTokensAndBackfill", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		var status, ext, access, refresh string
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT status, external_user_id, access_token_sealed, refresh_token_sealed
			FROM switchboard.device_connections WHERE id = $1`, id).Scan(&status, &ext, &access, &refresh))
		require.Equal(t, "active", status)
		require.Equal(t, testUser, ext)
		require.True(t, strings.HasPrefix(access, "v1:k1:"), "tokens are sealed")
		require.NotContains(t, refresh, "sandbox")
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'wearable_backfill'"))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.events WHERE kind = 'device.connected'"))
	})

	t.Run("BarePatientIDOrUnknownLinkIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		for _, link := range []string{"", "1", patientRef, "not-a-link"} {
			_, _, err := b.api.StartURL(t.Context(), link)
			require.ErrorIs(t, err, wearables.ErrLinkInvalid, link)
		}
		exec(t, b.pool, "UPDATE switchboard.connect_links SET expires_at = now() - interval '1 second'")
		l := b.link(t)
		exec(t, b.pool, "UPDATE switchboard.connect_links SET expires_at = now() - interval '1 second'")
		_, _, err := b.api.StartURL(t.Context(), l)
		require.ErrorIs(t, err, wearables.ErrLinkInvalid)
	})

	noConnection := func(t *testing.T, b *testBundle) {
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM switchboard.device_connections"))
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'wearable_backfill'"))
	}

	t.Run("LinkStartsAtMostOneConsent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		l := b.link(t)
		require.NoError(t, b.api.CheckLink(t.Context(), l), "looking at the link does not spend it")
		require.NoError(t, b.api.CheckLink(t.Context(), l))
		q, ck := b.consentWith(t, l)
		_, _, err := b.api.StartURL(t.Context(), l)
		require.ErrorIs(t, err, wearables.ErrLinkUsed, "a second use of the link is refused")
		require.ErrorIs(t, b.api.CheckLink(t.Context(), l), wearables.ErrLinkUsed)
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.oauth_states"), "one consent started")
		_, err = b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.NoError(t, err)
	})

	t.Run("ConcurrentUsesOfOneLinkStartOneConsent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		l := b.link(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); _, _, errs[i] = b.api.StartURL(context.Background(), l) }()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				require.ErrorIs(t, err, wearables.ErrLinkUsed)
			}
		}
		require.Equal(t, 1, ok)
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.oauth_states"))
	})

	t.Run("CallbackFromAnotherBrowserIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		_, otherBrowser := b.consent(t) // a consent started elsewhere
		for name, cookie := range map[string]string{"none": "", "other browser": otherBrowser, "forged": "v1:k1:AAAA", "garbage": "x"} {
			_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", cookie)
			require.ErrorIs(t, err, wearables.ErrBrowser, name)
		}
		require.Equal(t, 0, b.sb.Count("token:authorization_code"), "no exchange for a foreign browser")
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM switchboard.device_connections"))
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM switchboard.oauth_states WHERE used_at IS NOT NULL"), "the state is not spent")
		// The browser that started it still completes it.
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.NoError(t, err)
	})

	t.Run("AccountSwapIsRefusedAndThePatientIsTold", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		b.sb.AddUser(googlehealthsandbox.User{HealthUserID: "hu-intruder", TimeZone: "UTC"})
		b.sb.SetConsentUser("hu-intruder")
		before := b.sb.Count("token:authorization_code")
		q, ck := b.consent(t)
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrAccountSwap)
		require.Equal(t, before+1, b.sb.Count("token:authorization_code"))
		var ext, status string
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT external_user_id, status FROM switchboard.device_connections WHERE id = $1", id).Scan(&ext, &status))
		require.Equal(t, testUser, ext, "the patient's account is not replaced")
		require.Equal(t, "active", status)
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.device_connections"))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.events WHERE kind = 'device.account_mismatch'"))
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM switchboard.events WHERE kind = 'device.account_mismatch' AND data::text LIKE '%hu-%'"), "no account id in the event")
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.messages WHERE to_e164 = $1 AND body = $2", patientPhone, wearables.DefaultAccountMismatchSMSText))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'wearable_backfill'"), "no backfill for the refused account")
		// The patient's own account still reconnects.
		b.sb.SetConsentUser(testUser)
		require.Equal(t, id, b.connect(t))
	})

	t.Run("ReauthLinkExpiresOnUse", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		b.sb.RevokeUser(testUser)
		exec(t, b.pool, "UPDATE switchboard.device_connections SET token_expires_at = now() - interval '1 minute'")
		s, err := wearables.NewService(b.deps)
		require.NoError(t, err)
		_, err = s.AccessToken(t.Context(), id, "")
		require.ErrorIs(t, err, wearables.ErrNeedsReauth)
		var body string
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT body FROM switchboard.messages WHERE to_e164 = $1", patientPhone).Scan(&body))
		_, rest, ok := strings.Cut(body, "/oauth/google-health/start?link=")
		require.True(t, ok, "the re-connect SMS carries a link")
		reauth := strings.Fields(rest)[0]
		other := b.link(t) // an older link still outstanding
		q, ck := b.consentWith(t, reauth)
		_, _, err = b.api.StartURL(t.Context(), reauth)
		require.ErrorIs(t, err, wearables.ErrLinkUsed, "the re-connect link works once")
		_, err = b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.NoError(t, err)
		_, _, err = b.api.StartURL(t.Context(), other)
		require.ErrorIs(t, err, wearables.ErrLinkInvalid, "a completed consent expires the patient's other links")
	})

	t.Run("StateMismatchIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state")+"x", q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrBrowser, "the cookie is bound to the state it was issued with")
		_, err = b.api.Callback(t.Context(), b.client, "", q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrStateMissing)
		noConnection(t, b)
	})

	t.Run("ExpiredStateIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		exec(t, b.pool, "UPDATE switchboard.oauth_states SET expires_at = now() - interval '1 second'")
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrStateExpired)
		noConnection(t, b)
		require.Equal(t, 0, b.sb.Count("token:authorization_code"), "no exchange for an expired state")
	})

	t.Run("ReusedStateIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.NoError(t, err)
		_, err = b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrStateReused)
		require.Equal(t, 1, b.sb.Count("token:authorization_code"))
	})

	t.Run("SandboxChecksThePKCEVerifier", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		// Exchange the code with a verifier that is not the one behind the challenge.
		oauth := googlehealth.NewOAuth(b.deps.Config.Google, nil)
		_, err := oauth.Exchange(t.Context(), q.Get("code"), googlehealth.NewCodeVerifier(), "https://switchboard.example.com/oauth/google-health/callback")
		require.ErrorIs(t, err, googlehealth.ErrInvalidGrant)
		// The code is spent: the real callback fails cleanly too.
		_, err = b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrExchange)
		require.ErrorIs(t, err, googlehealth.ErrInvalidGrant)
		noConnection(t, b)
	})

	t.Run("ExchangeFailureIsAClearErrorAndActivatesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		b.sb.Fail("/token", http.StatusServiceUnavailable, 1, 0)
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), q.Get("code"), "", ck)
		require.ErrorIs(t, err, wearables.ErrExchange)
		var oe *googlehealth.OAuthError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, http.StatusServiceUnavailable, oe.HTTPStatus)
		noConnection(t, b)
	})

	t.Run("DeniedConsentActivatesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		q, ck := b.consent(t)
		_, err := b.api.Callback(t.Context(), b.client, q.Get("state"), "", "access_denied", ck)
		require.ErrorIs(t, err, wearables.ErrConsentDenied)
		noConnection(t, b)
	})
}

func TestTokenRefresh(t *testing.T) {
	t.Parallel()

	t.Run("ConcurrentRefreshReachesTheTokenServerOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		exec(t, b.pool, "UPDATE switchboard.device_connections SET token_expires_at = now() - interval '1 minute'")
		before := b.sb.Count("token:refresh_token")
		// Several "replicas": each its own service on its own pool.
		const replicas = 6
		apis := make([]*wearables.Service, replicas)
		for i := range apis {
			pool, err := pgxpool.New(t.Context(), b.pool.Config().ConnString())
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			deps := b.deps
			deps.Pool = pool
			deps.Registry = resilience.New(nil)
			apis[i], err = wearables.NewService(deps)
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		tokens := make([]string, replicas*3)
		errs := make([]error, replicas*3)
		for i := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tokens[i], errs[i] = apis[i%replicas].AccessToken(context.Background(), id, "")
			}()
		}
		wg.Wait()
		for i := range tokens {
			require.NoError(t, errs[i])
			require.Equal(t, tokens[0], tokens[i], "every job got the one refreshed token")
		}
		require.Equal(t, 1, b.sb.Count("token:refresh_token")-before)
	})

	t.Run("InvalidGrantMeansNeedsReauthAndExactlyOneSMS", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		b.sb.RevokeUser(testUser)
		exec(t, b.pool, "UPDATE switchboard.device_connections SET token_expires_at = now() - interval '1 minute'")
		s, err := wearables.NewService(b.deps)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.AccessToken(context.Background(), id, "")
				assert.Error(t, err)
			}()
		}
		wg.Wait()
		require.Equal(t, 1, b.sb.Count("token:refresh_token"), "no retry storm")
		var status, reason string
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT status, status_reason FROM switchboard.device_connections WHERE id = $1", id).Scan(&status, &reason))
		require.Equal(t, "needs_reauth", status)
		require.Equal(t, "invalid_grant", reason)
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.messages WHERE to_e164 = $1", patientPhone))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'sms_send'"))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.messages WHERE body LIKE '%/oauth/google-health/start?link=%'"))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.events WHERE kind = 'device.needs_reauth'"))

		// Syncs stop: a sync job completes without calling Google.
		calls := b.sb.Count("api:rate")
		require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			_, err := b.client.InsertTx(t.Context(), tx, jobs.WearableSyncArgs{ConnectionID: id, DataType: "weight",
				Start: time.Now().Add(-24 * time.Hour).Truncate(24 * time.Hour), End: time.Now().Truncate(24 * time.Hour)}, nil)
			return err
		}))
		exec(t, b.pool, "DELETE FROM switchboard.river_job WHERE kind = 'wearable_backfill'")
		b.runJobs(t)
		require.Equal(t, calls, b.sb.Count("api:rate"))

		// Re-consent restores active.
		b.connect(t)
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT status FROM switchboard.device_connections WHERE id = $1", id).Scan(&status))
		require.Equal(t, "active", status)
	})

	t.Run("OptedOutPatientGetsNoSMS", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		exec(t, b.pool, "INSERT INTO switchboard.sms_consent (phone_e164, opted_out, source) VALUES ($1, true, 'test')", patientPhone)
		b.sb.RevokeUser(testUser)
		exec(t, b.pool, "UPDATE switchboard.device_connections SET token_expires_at = now() - interval '1 minute'")
		s, err := wearables.NewService(b.deps)
		require.NoError(t, err)
		_, err = s.AccessToken(t.Context(), id, "")
		require.ErrorIs(t, err, wearables.ErrNeedsReauth)
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM switchboard.messages"))
	})
}

func dp(bpm int64, at time.Time) googlehealth.DataPoint {
	return googlehealth.DataPoint{DataSource: &googlehealth.DataSource{Platform: "FITBIT", RecordingMethod: "PASSIVELY_MEASURED"},
		HeartRate: &googlehealth.HeartRate{BeatsPerMinute: googlehealth.Int64(bpm), SampleTime: googlehealth.SampleTime{PhysicalTime: at, UTCOffset: googlehealth.Duration(-5 * time.Hour)}}}
}

func stepsPoint(platform string, n int64, at time.Time) googlehealth.DataPoint {
	return googlehealth.DataPoint{DataSource: &googlehealth.DataSource{Platform: platform},
		Steps: &googlehealth.Steps{Count: googlehealth.Int64(n), Interval: googlehealth.Interval{StartTime: at, EndTime: at.Add(time.Minute)}}}
}

func TestSync(t *testing.T) {
	t.Parallel()

	t.Run("PagesOverlapsAndRedeliveriesStoreEachPointOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) {
			c.DataTypes = []string{googlehealth.TypeHeartRate, googlehealth.TypeSteps, googlehealth.TypeWeight}
			// 25,000 samples under -race on a busy 2-core machine can take
			// longer than the production bound of one sync job; the test is
			// about paging and idempotence, not the job timeout.
			c.SyncTimeout = 15 * time.Minute
		})
		day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
		// 25,000 heart-rate samples in one day: three pages of 10,000.
		var hr []googlehealth.DataPoint
		for i := range 25000 {
			hr = append(hr, dp(int64(60+i%40), day.Add(time.Duration(i)*3*time.Second)))
		}
		b.sb.AddDataPoints(testUser, googlehealth.TypeHeartRate, hr...)
		// Watch and phone count the same minutes: the roll-up counts them once.
		for i := range 100 {
			at := day.Add(14*time.Hour + time.Duration(i)*time.Minute)
			b.sb.AddDataPoints(testUser, googlehealth.TypeSteps, stepsPoint("FITBIT", 50, at), stepsPoint("ANDROID", 45, at))
		}
		id := b.connect(t)
		b.runJobs(t)
		require.GreaterOrEqual(t, b.sb.Count("api:GET /v4/users/{user}/dataTypes/{type}/dataPoints"), 3+2, "followed the pages")
		require.Equal(t, 25000, count(t, b.pool, "SELECT count(*) FROM switchboard.wearable_samples WHERE kind = 'heart_rate'"))
		var steps float64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT sum(value) FROM switchboard.observations WHERE kind = 'steps' AND unit = '/d'`).Scan(&steps))
		require.Equal(t, float64(100*50), steps, "steps are not double counted")

		// Re-delivered and overlapping work: the same windows again, and a poll.
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			for _, w := range [][2]time.Time{{day, day.Add(24 * time.Hour)}, {day.Add(-24 * time.Hour), day.Add(24 * time.Hour)}} {
				if _, err := b.client.InsertTx(t.Context(), tx, jobs.WearableSyncArgs{ConnectionID: id, DataType: googlehealth.TypeHeartRate, Start: w[0], End: w[1]}, nil); err != nil {
					return err
				}
			}
			_, err := b.client.InsertTx(t.Context(), tx, jobs.WearablePollArgs{}, nil)
			return err
		}))
		b.runJobs(t)
		require.Equal(t, 25000, count(t, b.pool, "SELECT count(*) FROM switchboard.wearable_samples WHERE kind = 'heart_rate'"))
		require.Equal(t, 0, count(t, b.pool, "SELECT count(*) FROM (SELECT source, source_id FROM switchboard.observations GROUP BY 1, 2 HAVING count(*) > 1) d"))
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT sum(value) FROM switchboard.observations WHERE kind = 'steps' AND unit = '/d'`).Scan(&steps))
		require.Equal(t, float64(100*50), steps)

		// Heart rate is pushed as hourly summaries, not 25,000 observations.
		hours := count(t, b.pool, "SELECT count(*) FROM switchboard.observations WHERE kind = 'heart_rate'")
		require.Equal(t, 21, hours) // 25,000 × 3 s = 20.8 h
		var n int
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT summary_count FROM switchboard.observations WHERE kind = 'heart_rate' ORDER BY effective_start LIMIT 1").Scan(&n))
		require.Equal(t, 1200, n)
	})

	t.Run("BurstOfNotificationsIsOneJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.connect(t)
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		at := time.Now().UTC().Truncate(24 * time.Hour).Add(-6 * time.Hour)
		for i := range 20 {
			body := googlehealthsandbox.Notification(testUser, "UPSERT", googlehealth.TypeHeartRate, at.Add(time.Duration(i)*time.Minute), at.Add(time.Duration(i+1)*time.Minute))
			_, err := b.api.StoreNotification(t.Context(), b.client, body)
			require.NoError(t, err)
			// Re-delivered as is: deduped by body hash.
			stored, err := b.api.StoreNotification(t.Context(), b.client, body)
			require.NoError(t, err)
			require.False(t, stored)
		}
		require.Equal(t, 20, count(t, b.pool, "SELECT count(*) FROM switchboard.inbound_webhooks"))
		b.deps.Config.NotifyDelay = time.Hour // keep the syncs waiting to count them
		b.runJobs(t)
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'wearable_sync' AND (args->>'connection_id')::bigint = $1", id))
	})

	t.Run("DeleteNotificationMarksEnteredInErrorAndPushesTheCorrection", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) { c.DataTypes = []string{googlehealth.TypeWeight} })
		exec(t, b.pool, `INSERT INTO switchboard.ehr_endpoints (name, base_url, push_types) VALUES ('ehr-test', 'https://ehr.example.com/fhir', '{Patient,Observation}')`)
		at := time.Now().UTC().Add(-3 * time.Hour)
		b.sb.AddDataPoints(testUser, googlehealth.TypeWeight, googlehealth.DataPoint{Name: "users/hu-111/dataTypes/weight/dataPoints/w1",
			Weight: &googlehealth.Weight{WeightGrams: 81234.5, SampleTime: googlehealth.SampleTime{PhysicalTime: at}}})
		b.connect(t)
		b.runJobs(t)
		var value float64
		var obsID int64
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT id, value FROM switchboard.observations WHERE kind = 'weight'").Scan(&obsID, &value))
		require.InDelta(t, 81.2345, value, 1e-9)
		pushes := count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'fhir_push' AND args->>'entity' = 'observation'")
		require.Equal(t, 1, pushes)

		b.sb.DeleteDataPoints(testUser, googlehealth.TypeWeight, at.Add(-time.Minute), at.Add(time.Minute))
		exec(t, b.pool, "DELETE FROM switchboard.river_job WHERE kind = 'fhir_push'")
		_, err := b.api.StoreNotification(t.Context(), b.client, googlehealthsandbox.Notification(testUser, "DELETE", googlehealth.TypeWeight, at.Add(-time.Minute), at.Add(time.Minute)))
		require.NoError(t, err)
		b.runJobs(t)
		var status string
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT status FROM switchboard.observations WHERE id = $1", obsID).Scan(&status))
		require.Equal(t, "entered-in-error", status)
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.river_job WHERE kind = 'fhir_push' AND (args->>'entity_id')::bigint = $1", obsID))
	})

	t.Run("RevokedAccessAndMissingScopes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) { c.DataTypes = []string{googlehealth.TypeWeight} })
		id := b.connect(t)
		b.runJobs(t)
		// A 403 disables the type; a 401 even after a refresh needs reauth.
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		b.sb.Fail("/v4/users/", http.StatusForbidden, 1, 0)
		insertSync := func() {
			require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
				_, err := b.client.InsertTx(t.Context(), tx, jobs.WearableSyncArgs{ConnectionID: id, DataType: googlehealth.TypeWeight,
					Start: time.Now().UTC().Truncate(24 * time.Hour), End: time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)}, nil)
				return err
			}))
		}
		insertSync()
		b.runJobs(t)
		require.Equal(t, "permission_denied", queryString(t, b.pool, "SELECT cursors->'weight'->>'disabled' FROM switchboard.device_connections WHERE id = $1", id))
		exec(t, b.pool, "UPDATE switchboard.device_connections SET cursors = '{}'")
		b.sb.Fail("/v4/users/", http.StatusUnauthorized, 2, 0)
		insertSync()
		b.runJobs(t)
		require.Equal(t, "needs_reauth", queryString(t, b.pool, "SELECT status FROM switchboard.device_connections WHERE id = $1", id))
		require.Equal(t, 1, count(t, b.pool, "SELECT count(*) FROM switchboard.messages"))
	})

	t.Run("RateLimitedSyncSnoozes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) {
			c.DataTypes = []string{googlehealth.TypeWeight}
			c.UserRateLimit = "1/h"
		})
		id := b.connect(t)
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		lim := ratelimit.New(b.pool)
		wait, err := lim.Take(t.Context(), "google_health:"+testUser, ratelimit.Limit{N: 1, Period: time.Hour, Burst: 1})
		require.NoError(t, err)
		require.Zero(t, wait)
		require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			_, err := b.client.InsertTx(t.Context(), tx, jobs.WearableSyncArgs{ConnectionID: id, DataType: googlehealth.TypeWeight,
				Start: time.Now().UTC().Truncate(24 * time.Hour), End: time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)}, nil)
			return err
		}))
		calls := b.sb.Count("api:rate")
		b.runJobs(t)
		require.Equal(t, calls, b.sb.Count("api:rate"))
		require.Equal(t, "scheduled", queryString(t, b.pool, "SELECT state::text FROM switchboard.river_job WHERE kind = 'wearable_sync'"))
		require.Equal(t, 1, count(t, b.pool, "SELECT (metadata->>'snoozes')::int FROM switchboard.river_job WHERE kind = 'wearable_sync'"), "snoozed, no attempt spent")
	})
}

func queryString(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&s))
	return s
}

// Register takes the sync's and revoke's unavailable limits from what the
// worker read of switchboard.job_kinds at start-up; without them it fails.
func TestRegisterNeedsTheUnavailableLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	deps := b.deps
	deps.UnavailableLimits = nil
	_, err := wearables.Register(t.Context(), river.NewWorkers(), deps)
	require.ErrorContains(t, err, "UnavailableLimits is required")
}
