package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/api"
)

// login asks for /status from src with Basic credentials.
func login(h http.Handler, src, user, password string) *httptest.ResponseRecorder {
	return loginVia(h, src, "", user, password)
}

// loginVia is login with an X-Forwarded-For header (none when empty).
func loginVia(h http.Handler, src, xff, user, password string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.RemoteAddr = src
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	req.SetBasicAuth(user, password)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestOperatorLoginLockout: failed logins are limited per source address
// and per username; a locked-out source or username gets 429 with
// Retry-After, even with the right password (no oracle), while others go
// on.
func TestOperatorLoginLockout(t *testing.T) {
	t.Parallel()

	t.Run("PerSource", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) {
			c.Login = api.LoginConfig{FailuresPerIP: 3, FailuresPerUsername: 100, Refill: time.Hour}
		})
		for i := range 3 {
			require.Equal(t, http.StatusUnauthorized, login(b.handler, "198.51.100.7:1000", testUser, "guess"+strconv.Itoa(i)).Code)
		}
		rec := login(b.handler, "198.51.100.7:1001", testUser, testPassword)
		require.Equal(t, http.StatusTooManyRequests, rec.Code, "the source is locked out, right password or not")
		secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
		require.NoError(t, err)
		require.Positive(t, secs)
		require.Equal(t, http.StatusOK, login(b.handler, "198.51.100.8:1000", testUser, testPassword).Code, "another source is not")

		// IPv6: the whole /64 is one source.
		for i := range 3 {
			require.Equal(t, http.StatusUnauthorized, login(b.handler, "[2001:db8:1:2::a]:1", "x", "guess"+strconv.Itoa(i)).Code)
		}
		require.Equal(t, http.StatusTooManyRequests, login(b.handler, "[2001:db8:1:2::b]:1", testUser, testPassword).Code)
	})

	t.Run("PerUsername", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) {
			c.Login = api.LoginConfig{FailuresPerIP: 100, FailuresPerUsername: 4, Refill: time.Hour}
		})
		for i := range 4 { // a distributed guess: each try from another address
			require.Equal(t, http.StatusUnauthorized, login(b.handler, "203.0.113."+strconv.Itoa(i+1)+":1", testUser, "guess").Code)
		}
		require.Equal(t, http.StatusTooManyRequests, login(b.handler, "203.0.113.200:1", testUser, testPassword).Code)
		require.Equal(t, http.StatusUnauthorized, login(b.handler, "203.0.113.201:1", "other", testPassword).Code, "other usernames are not locked")
	})

	t.Run("DefaultsLockAfterTenFailuresFromOneSource", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		codes := map[int]int{}
		for range 25 {
			codes[login(b.handler, "192.0.2.55:1", testUser, "guess").Code]++
		}
		require.Equal(t, map[int]int{http.StatusUnauthorized: 10, http.StatusTooManyRequests: 15}, codes)
	})
}

// TestLockoutBehindATrustedProxy: X-Forwarded-For names the client only
// when the direct peer is in API_TRUSTED_PROXIES, and then only its
// rightmost hop that is not a trusted proxy counts. A client that sends the
// header itself does not evade the lockout; behind the proxy, each real
// client is locked out on its own.
func TestLockoutBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	const proxy = "10.0.0.5:4000"
	b := setup(t, func(c *api.Config) {
		c.Login = api.LoginConfig{FailuresPerIP: 3, FailuresPerUsername: 1000, Refill: time.Hour}
		require.NoError(t, c.TrustedProxies.EnvDecode("10.0.0.0/8, 192.168.1.1"))
	})

	t.Run("SpoofedHeaderFromAnUntrustedPeerDoesNotEvadeTheLockout", func(t *testing.T) {
		for i := range 3 {
			xff := "198.51.100." + strconv.Itoa(i+1)
			require.Equal(t, http.StatusUnauthorized, loginVia(b.handler, "203.0.113.9:1", xff, testUser, "guess").Code)
		}
		require.Equal(t, http.StatusTooManyRequests, loginVia(b.handler, "203.0.113.9:1", "198.51.100.77", testUser, testPassword).Code,
			"the peer is the source, whatever the header says")
	})

	t.Run("ThroughTheProxyTheLockoutIsPerRealClient", func(t *testing.T) {
		for range 3 {
			require.Equal(t, http.StatusUnauthorized, loginVia(b.handler, proxy, "192.0.2.10", testUser, "guess").Code)
		}
		require.Equal(t, http.StatusTooManyRequests, loginVia(b.handler, proxy, "192.0.2.10", testUser, testPassword).Code)
		require.Equal(t, http.StatusOK, loginVia(b.handler, proxy, "192.0.2.11", testUser, testPassword).Code,
			"another client behind the same proxy is not locked out")
	})

	t.Run("HopsTheClientWroteAreIgnored", func(t *testing.T) {
		// The proxy appends the address it saw; what is left of it came
		// from the client.
		require.Equal(t, http.StatusTooManyRequests, loginVia(b.handler, proxy, "192.0.2.99, 192.0.2.10", testUser, testPassword).Code)
		// A chain of trusted proxies: the first untrusted hop from the
		// right is the client.
		require.Equal(t, http.StatusTooManyRequests, loginVia(b.handler, proxy, "192.0.2.10, 192.168.1.1", testUser, testPassword).Code)
		require.Equal(t, http.StatusTooManyRequests, loginVia(b.handler, proxy, "192.0.2.10:5555", testUser, testPassword).Code)
	})

	t.Run("ThroughTheProxyWithoutAHeaderTheProxyIsTheSource", func(t *testing.T) {
		for range 3 {
			require.Equal(t, http.StatusUnauthorized, loginVia(b.handler, "10.9.9.9:1", "", testUser, "guess").Code)
		}
		require.Equal(t, http.StatusTooManyRequests, loginVia(b.handler, "10.9.9.9:1", "garbage", testUser, testPassword).Code,
			"an unreadable hop falls back to the proxy, never to an address further left")
	})
}

func TestTrustedProxiesParse(t *testing.T) {
	t.Parallel()
	var p api.Proxies
	require.NoError(t, p.EnvDecode(" 10.0.0.0/8 ,2001:db8::/32,192.168.1.1,,"))
	require.Equal(t, "[10.0.0.0/8 2001:db8::/32 192.168.1.1/32]", fmt.Sprint(p))
	require.ErrorContains(t, p.EnvDecode("10.0.0.0/33"), "not a CIDR")
	require.ErrorContains(t, p.EnvDecode("proxy.example"), "not a CIDR")
}
