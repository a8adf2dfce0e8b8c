package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/crypto/bcrypt"
)

// operatorRealm is the Basic auth realm of operator routes.
const operatorRealm = `Basic realm="switchboard"`

// LoginConfig bounds password guessing on the operator routes
// (OPERATOR_LOGIN_* variables). Zero fields take the defaults.
type LoginConfig struct {
	// FailuresPerIP failed logins from one source address (an IPv6 /64)
	// lock that source out; it gets one more try every Refill.
	FailuresPerIP int `env:"OPERATOR_LOGIN_FAILURES_PER_IP, default=10"`
	// FailuresPerUsername failed logins naming one username, from anywhere,
	// lock that username out; one more try every Refill.
	FailuresPerUsername int `env:"OPERATOR_LOGIN_FAILURES_PER_USERNAME, default=20"`
	// Refill is how often a locked-out source or username gets one try.
	Refill time.Duration `env:"OPERATOR_LOGIN_REFILL, default=1m"`
	// Tracked bounds how many sources and how many usernames are
	// remembered (least recently failed are forgotten first).
	Tracked int `env:"OPERATOR_LOGIN_TRACKED, default=10000"`
	// BcryptConcurrency is how many password checks run at once; a login
	// that finds them all busy answers 429 at once, so guessing cannot take
	// the CPU the webhook routes need.
	BcryptConcurrency int `env:"OPERATOR_BCRYPT_CONCURRENCY, default=1"`
}

func (c LoginConfig) withDefaults() LoginConfig {
	if c.FailuresPerIP <= 0 {
		c.FailuresPerIP = 10
	}
	if c.FailuresPerUsername <= 0 {
		c.FailuresPerUsername = 20
	}
	if c.Refill <= 0 {
		c.Refill = time.Minute
	}
	if c.Tracked <= 0 {
		c.Tracked = 10000
	}
	if c.BcryptConcurrency <= 0 {
		c.BcryptConcurrency = 1
	}
	return c
}

// Results of an operator login, the result label of
// switchboard_operator_logins_total.
const (
	loginOK     = "ok"
	loginFailed = "failed"
	loginLocked = "locked_out"
	loginBusy   = "busy"
)

var operatorLogins = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "switchboard",
	Name:      "operator_logins_total",
	Help:      "Operator logins with a password, by result (ok, failed, locked_out: refused by the per-source or per-username lockout without a password check, busy: every password check slot was taken).",
}, []string{"result"})

var ssoLogins = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "switchboard",
	Name:      "sso_logins_total",
	Help:      "OpenID Connect logins, by result (ok, no_flow, bad_state, exchange_failed, bad_id_token, bad_nonce, not_allowed).",
}, []string{"result"})

// operatorAuth checks operator credentials. bcrypt is deliberately slow and
// River UI polls its API several times a second, so once a username and
// password have matched, the SHA-256 of the pair is kept and compared in
// constant time instead; anything else goes through bcrypt, so a right
// password with a wrong username costs what a wrong password costs.
type operatorAuth struct {
	username string
	hash     []byte
	// verified is the SHA-256 of the username and password last verified.
	verified atomic.Pointer[[sha256.Size]byte]
	// compare is bcrypt.CompareHashAndPassword (tests count the calls).
	compare func(hash, password []byte) error

	cfg    LoginConfig
	bySrc  *failureThrottle
	byUser *failureThrottle
	// slots holds one token per password check that may run at once.
	slots chan struct{}
}

func newOperatorState(a *operatorAuth, cfg LoginConfig) *operatorAuth {
	a.cfg = cfg.withDefaults()
	a.compare = bcrypt.CompareHashAndPassword
	a.bySrc = newFailureThrottle(a.cfg.FailuresPerIP, a.cfg.Refill, a.cfg.Tracked)
	a.byUser = newFailureThrottle(a.cfg.FailuresPerUsername, a.cfg.Refill, a.cfg.Tracked)
	a.slots = make(chan struct{}, a.cfg.BcryptConcurrency)
	return a
}

func (a *operatorAuth) configured() bool {
	return a != nil && a.username != "" && len(a.hash) > 0
}

// pairSum is what the cache holds: the username and password, separated
// so that ("ab","c") and ("a","bc") differ.
func pairSum(user, password string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(user))))
	h.Write([]byte{0})
	h.Write([]byte(user))
	h.Write([]byte(password))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// check reports whether user and password are the operator's. The cached
// pair answers only for exactly the operator's pair; anything else is
// checked by bcrypt, whatever is wrong, so timing tells nothing about
// which part failed. busy is true when no password check slot was free:
// nothing was checked.
func (a *operatorAuth) check(user, password string) (ok, busy bool) {
	sum := pairSum(user, password)
	if v := a.verified.Load(); v != nil && subtle.ConstantTimeCompare(v[:], sum[:]) == 1 {
		return true, false
	}
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	default:
		return false, true
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.username)) == 1
	passOK := a.compare(a.hash, []byte(password)) == nil
	if userOK && passOK {
		a.verified.Store(&sum)
		return true, false
	}
	return false, false
}

// lockedOut reports whether src or user has used up its failed logins, and
// for how long.
func (a *operatorAuth) lockedOut(src, user string, now time.Time) (time.Duration, bool) {
	srcWait, _ := a.bySrc.blocked(src, now)
	userWait, _ := a.byUser.blocked(user, now)
	wait := max(srcWait, userWait)
	return wait, wait > 0
}

// failed spends one try of src and of user.
func (a *operatorAuth) failed(src, user string, now time.Time) {
	a.bySrc.failed(src, now)
	a.byUser.failed(user, now)
}

// tooMany answers 429 with a Retry-After of at least a second.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	setRetryAfter(w, wait)
	http.Error(w, "too many failed logins, try again later", http.StatusTooManyRequests)
}

// requireOperator lets only the operator through: a valid SSO session
// (when OIDC is configured) or Basic credentials. 503 when neither login is
// configured; a browser without credentials is sent to the SSO login when
// there is one; otherwise 401 with a Basic challenge when credentials are
// missing or wrong; a source or username that has used up its failed
// logins gets 429 without its password being checked.
func (s *Server) requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sso != nil && s.sso.authenticated(r) {
			next.ServeHTTP(w, r)
			return
		}
		if !s.operator.configured() {
			if s.sso != nil {
				s.sso.challenge(w, r)
				return
			}
			http.Error(w, "operator credentials not configured", http.StatusServiceUnavailable)
			return
		}
		user, password, ok := r.BasicAuth()
		if !ok {
			if s.sso != nil && r.Method == http.MethodGet && wantsHTML(r) {
				s.sso.challenge(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", operatorRealm)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		now := time.Now()
		src := s.cfg.TrustedProxies.sourceKey(r)
		if wait, locked := s.operator.lockedOut(src, user, now); locked {
			operatorLogins.WithLabelValues(loginLocked).Inc()
			tooMany(w, wait)
			return
		}
		good, busy := s.operator.check(user, password)
		switch {
		case busy:
			operatorLogins.WithLabelValues(loginBusy).Inc()
			tooMany(w, time.Second)
			return
		case !good:
			operatorLogins.WithLabelValues(loginFailed).Inc()
			s.operator.failed(src, user, now)
			w.Header().Set("WWW-Authenticate", operatorRealm)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		operatorLogins.WithLabelValues(loginOK).Inc()
		next.ServeHTTP(w, r)
	})
}
