package api

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func testOperator(t *testing.T, cfg LoginConfig) (*operatorAuth, *atomic.Int64) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	require.NoError(t, err)
	a, err := newOperatorAuth("ops", Secret(h), cfg)
	require.NoError(t, err)
	var calls atomic.Int64
	a.compare = func(hash, pw []byte) error {
		calls.Add(1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	return a, &calls
}

// TestOperatorCheckCostsTheSameWhateverIsWrong: once the operator has logged
// in, their exact username and password skip bcrypt; a right password with a
// wrong username (and every other wrong pair) still pays a bcrypt, so a
// fast 401 no longer tells an attacker the password is right.
func TestOperatorCheckCostsTheSameWhateverIsWrong(t *testing.T) {
	t.Parallel()
	a, calls := testOperator(t, LoginConfig{})

	ok, _ := a.check("ops", "right")
	require.True(t, ok)
	require.EqualValues(t, 1, calls.Load())
	ok, _ = a.check("ops", "right")
	require.True(t, ok)
	require.EqualValues(t, 1, calls.Load(), "the verified pair is cached")

	for _, tc := range []struct{ user, password string }{
		{"someone", "right"}, {"ops", "wrong"}, {"someone", "wrong"}, {"opsr", "ight"}, {"", ""},
	} {
		before := calls.Load()
		ok, busy := a.check(tc.user, tc.password)
		require.False(t, ok, "%+v", tc)
		require.False(t, busy)
		require.Equal(t, before+1, calls.Load(), "%+v pays one bcrypt", tc)
	}
}

// TestPasswordChecksCannotTakeEveryCore: with every password check slot
// taken, another login is answered 429 at once without a bcrypt, and the
// cached operator pair still gets in.
func TestPasswordChecksCannotTakeEveryCore(t *testing.T) {
	t.Parallel()
	a, calls := testOperator(t, LoginConfig{BcryptConcurrency: 1})
	ok, _ := a.check("ops", "right")
	require.True(t, ok)
	s := &Server{operator: a}
	h := s.requireOperator(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))

	a.slots <- struct{}{} // a password check in progress
	defer func() { <-a.slots }()
	before := calls.Load()
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.SetBasicAuth("ops", "guess")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
	require.Equal(t, before, calls.Load(), "no bcrypt while the slots are taken")

	req = httptest.NewRequest(http.MethodGet, "/status", nil)
	req.SetBasicAuth("ops", "right")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNoContent, rec.Code, "the logged-in operator is not held up")
}
