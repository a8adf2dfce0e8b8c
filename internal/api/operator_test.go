package api_test

import (
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
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.RemoteAddr = src
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
