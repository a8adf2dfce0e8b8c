package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// operatorRealm is the Basic auth realm of operator routes.
const operatorRealm = `Basic realm="switchboard"`

// operatorAuth checks operator credentials. bcrypt is deliberately slow and
// River UI polls its API several times a second, so once a password has
// matched the hash its SHA-256 is kept and compared in constant time
// instead; any other password still goes through bcrypt.
type operatorAuth struct {
	username string
	hash     []byte
	// verified is the SHA-256 of the password last verified by bcrypt.
	verified atomic.Pointer[[sha256.Size]byte]
}

func (a *operatorAuth) configured() bool {
	return a != nil && a.username != "" && len(a.hash) > 0
}

// check reports whether user and password are the operator's. The username
// is compared in constant time, and the password is checked even when the
// username is wrong, so timing tells nothing about which one failed.
func (a *operatorAuth) check(user, password string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.username)) == 1
	sum := sha256.Sum256([]byte(password))
	passOK := false
	if v := a.verified.Load(); v != nil && subtle.ConstantTimeCompare(v[:], sum[:]) == 1 {
		passOK = true
	} else if bcrypt.CompareHashAndPassword(a.hash, []byte(password)) == nil {
		a.verified.Store(&sum)
		passOK = true
	}
	return userOK && passOK
}

// requireOperator lets only the operator through: 503 when no operator
// credentials are configured, 401 with a Basic challenge when they are
// missing or wrong.
func (s *Server) requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.operator.configured() {
			http.Error(w, "operator credentials not configured", http.StatusServiceUnavailable)
			return
		}
		user, password, ok := r.BasicAuth()
		if !ok || !s.operator.check(user, password) {
			w.Header().Set("WWW-Authenticate", operatorRealm)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
