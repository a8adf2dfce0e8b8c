package googlehealthsandbox

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
)

// Config configures a Server.
type Config struct {
	// ClientID and ClientSecret are the OAuth client the token endpoint accepts.
	ClientID, ClientSecret string
	// WebhookSecret is sent as Authorization with every notification.
	WebhookSecret string
	// AccessTokenTTL is the life of an access token (default 1h).
	AccessTokenTTL time.Duration
	// DefaultPageSize when the request names none (Google: 1440).
	DefaultPageSize int
}

// User is a simulated Google account with a Google Health profile.
type User struct {
	HealthUserID string
	LegacyUserID string
	TimeZone     string
	// Scopes granted at consent; empty: every scope asked for.
	Scopes []string
}

type grant struct {
	user          string
	scopes        []string
	refreshToken  string
	revoked       bool
	codeChallenge string
	redirectURI   string
	codeUsed      bool
}

type access struct {
	grant   *grant
	expires time.Time
}

type fault struct {
	prefix     string
	status     int
	remaining  int
	retryAfter time.Duration
}

// Server is the sandbox. It is an http.Handler and safe for concurrent use.
type Server struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux

	key   *ecdsa.PrivateKey
	keyID uint32

	mu          sync.Mutex
	users       map[string]*User
	consentUser string
	codes       map[string]*grant
	refresh     map[string]*grant
	access      map[string]*access
	points      map[string]map[string][]googlehealth.DataPoint // user → type → points
	faults      []*fault
	counts      map[string]int
}

// New returns a sandbox with a fresh signing key.
func New(cfg Config, logger *slog.Logger) *Server {
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.DefaultPageSize <= 0 {
		cfg.DefaultPageSize = 1440
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	s := &Server{
		cfg: cfg, logger: logger, key: key, keyID: binary.BigEndian.Uint32(id[:]) | 1,
		users: map[string]*User{}, codes: map[string]*grant{}, refresh: map[string]*grant{},
		access: map[string]*access{}, points: map[string]map[string][]googlehealth.DataPoint{}, counts: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /o/oauth2/v2/auth", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /revoke", s.revoke)
	mux.HandleFunc("GET /v4/users/me/identity", s.api(s.identity))
	mux.HandleFunc("GET /v4/users/me/settings", s.api(s.settings))
	mux.HandleFunc("GET /v4/users/{user}/dataTypes/{type}/dataPoints", s.api(s.list))
	mux.HandleFunc("POST /v4/users/{user}/dataTypes/{type}/{op}", s.api(s.rollup))
	s.mux = mux
	return s
}

// AddUser adds a simulated account; the first one added answers consent
// until SetConsentUser picks another.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.TimeZone == "" {
		u.TimeZone = "UTC"
	}
	s.users[u.HealthUserID] = &u
	if s.consentUser == "" {
		s.consentUser = u.HealthUserID
	}
}

// SetConsentUser picks the account that approves the next consents.
func (s *Server) SetConsentUser(healthUserID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consentUser = healthUserID
}

// AddDataPoints stores points of dataType for a user. Adding a point
// equal to a stored one is a no-op.
func (s *Server) AddDataPoints(healthUserID, dataType string, pts ...googlehealth.DataPoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byType := s.points[healthUserID]
	if byType == nil {
		byType = map[string][]googlehealth.DataPoint{}
		s.points[healthUserID] = byType
	}
	byType[dataType] = append(byType[dataType], pts...)
}

// DeleteDataPoints removes a user's points of dataType whose time is in
// [start, end) and returns how many.
func (s *Server) DeleteDataPoints(healthUserID, dataType string, start, end time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []googlehealth.DataPoint
	n := 0
	for _, p := range s.points[healthUserID][dataType] {
		t := pointTime(dataType, p)
		if !t.Before(start) && t.Before(end) {
			n++
			continue
		}
		kept = append(kept, p)
	}
	if s.points[healthUserID] != nil {
		s.points[healthUserID][dataType] = kept
	}
	return n
}

// Fail makes the next n requests whose path starts with prefix answer
// status (429 carries Retry-After: retryAfter).
func (s *Server) Fail(prefix string, status, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{prefix: prefix, status: status, remaining: n, retryAfter: retryAfter})
}

// RevokeUser revokes every grant of a user, as when the patient removes
// access in their Google account: refreshes answer invalid_grant and
// access tokens 401.
func (s *Server) RevokeUser(healthUserID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.refresh {
		if g.user == healthUserID {
			g.revoked = true
		}
	}
}

// ExpireAccessTokens makes every access token issued so far expired.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.access {
		a.expires = time.Now().Add(-time.Second)
	}
}

// Count returns how many requests of a kind were received: "token:authorization_code",
// "token:refresh_token", "revoke", "api:<path pattern>", "api:rate" (all API calls).
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	for i, f := range s.faults {
		if f.remaining > 0 && strings.HasPrefix(r.URL.Path, f.prefix) {
			f.remaining--
			if f.remaining == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			s.mu.Unlock()
			if f.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Seconds())))
			}
			status := map[int]string{429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 400: "INVALID_ARGUMENT"}[f.status]
			if status == "" {
				status = "UNAVAILABLE"
			}
			if strings.HasPrefix(r.URL.Path, "/token") {
				writeJSON(w, f.status, map[string]string{"error": "temporarily_unavailable"})
				return
			}
			apiError(w, f.status, status, "")
			return
		}
	}
	s.mu.Unlock()
	s.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, code int, status, reason string) {
	body := map[string]any{"code": code, "status": status, "message": strings.ToLower(strings.ReplaceAll(status, "_", " "))}
	if reason != "" {
		body["details"] = []map[string]string{{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "health.googleapis.com"}}
	}
	writeJSON(w, code, map[string]any{"error": body})
}

func randomToken(prefix string) string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// authorize is the consent screen: it approves at once for the consent
// user and redirects to redirect_uri with a code (or an error).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if err != nil || ru.Scheme == "" || ru.Host == "" {
		http.Error(w, "Error 400: redirect_uri_mismatch", http.StatusBadRequest)
		return
	}
	if q.Get("client_id") != s.cfg.ClientID {
		http.Error(w, "Error 401: invalid_client", http.StatusUnauthorized)
		return
	}
	back := ru.Query()
	back.Set("state", q.Get("state"))
	fail := func(code string) {
		back.Set("error", code)
		ru.RawQuery = back.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type")
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		fail("invalid_request")
		return
	}
	s.mu.Lock()
	u := s.users[s.consentUser]
	if u == nil {
		s.mu.Unlock()
		fail("access_denied")
		return
	}
	scopes := u.Scopes
	if len(scopes) == 0 {
		scopes = strings.Fields(q.Get("scope"))
	}
	code := randomToken("4/sandbox-")
	g := &grant{user: u.HealthUserID, scopes: scopes, codeChallenge: q.Get("code_challenge"), redirectURI: redirect}
	if q.Get("access_type") == "offline" {
		g.refreshToken = randomToken("1//sandbox-")
	}
	s.codes[code] = g
	s.mu.Unlock()
	back.Set("code", code)
	back.Set("scope", strings.Join(scopes, " "))
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func oauthFail(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": code})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthFail(w, http.StatusBadRequest, "invalid_request")
		return
	}
	grantType := r.PostForm.Get("grant_type")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts["token:"+grantType]++
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.cfg.ClientID || secret != s.cfg.ClientSecret {
		oauthFail(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	var g *grant
	switch grantType {
	case "authorization_code":
		g = s.codes[r.PostForm.Get("code")]
		if g == nil || g.codeUsed {
			oauthFail(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g.codeUsed = true // single use, even when the rest fails
		if r.PostForm.Get("redirect_uri") != g.redirectURI {
			oauthFail(w, http.StatusBadRequest, "redirect_uri_mismatch")
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.codeChallenge {
			oauthFail(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if g.refreshToken != "" {
			s.refresh[g.refreshToken] = g
		}
	case "refresh_token":
		g = s.refresh[r.PostForm.Get("refresh_token")]
		if g == nil || g.revoked {
			oauthFail(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	default:
		oauthFail(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	at := randomToken("ya29.sandbox-")
	s.access[at] = &access{grant: g, expires: time.Now().Add(s.cfg.AccessTokenTTL)}
	resp := map[string]any{
		"access_token": at, "expires_in": int(s.cfg.AccessTokenTTL.Seconds()),
		"scope": strings.Join(g.scopes, " "), "token_type": "Bearer",
	}
	if grantType == "authorization_code" && g.refreshToken != "" {
		resp["refresh_token"] = g.refreshToken
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthFail(w, http.StatusBadRequest, "invalid_request")
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts["revoke"]++
	if g := s.refresh[tok]; g != nil {
		g.revoked = true
		w.WriteHeader(http.StatusOK)
		return
	}
	if a := s.access[tok]; a != nil {
		a.grant.revoked = true
		w.WriteHeader(http.StatusOK)
		return
	}
	oauthFail(w, http.StatusBadRequest, "invalid_token")
}

// api authenticates the bearer token and resolves "me".
func (s *Server) api(fn func(w http.ResponseWriter, r *http.Request, u *User, g *grant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		s.counts["api:rate"]++
		s.counts["api:"+r.Pattern]++
		a := s.access[tok]
		if !ok || a == nil || a.grant.revoked || time.Now().After(a.expires) {
			s.mu.Unlock()
			apiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "")
			return
		}
		u := s.users[a.grant.user]
		s.mu.Unlock()
		if who := r.PathValue("user"); who != "" && who != "me" && who != u.HealthUserID {
			apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "")
			return
		}
		fn(w, r, u, a.grant)
	}
}

func (s *Server) identity(w http.ResponseWriter, _ *http.Request, u *User, _ *grant) {
	writeJSON(w, http.StatusOK, googlehealth.Identity{HealthUserID: u.HealthUserID, LegacyUserID: u.LegacyUserID})
}

func (s *Server) settings(w http.ResponseWriter, _ *http.Request, u *User, _ *grant) {
	writeJSON(w, http.StatusOK, googlehealth.Settings{TimeZone: u.TimeZone})
}

// scopeFor is the scope a data type needs.
func scopeFor(dataType string) string {
	switch dataType {
	case googlehealth.TypeSteps:
		return googlehealth.ScopePrefix + "activity_and_fitness.readonly"
	case googlehealth.TypeSleep:
		return googlehealth.ScopePrefix + "sleep.readonly"
	default:
		return googlehealth.ScopePrefix + "health_metrics_and_measurements.readonly"
	}
}

func granted(g *grant, scope string) bool {
	for _, s := range g.scopes {
		if s == scope {
			return true
		}
	}
	return false
}

var filterTerm = regexp.MustCompile(`^([a-z_]+)\.([a-z_.]+) >= "([^"]+)" AND ([a-z_]+)\.([a-z_.]+) < "([^"]+)"$`)

// parseFilter reads the two-sided filters the adapter sends.
func parseFilter(dataType, f string) (time.Time, time.Time, error) {
	m := filterTerm.FindStringSubmatch(f)
	field := strings.ReplaceAll(dataType, "-", "_")
	if m == nil || m[1] != field || m[4] != field || m[2] != m[5] {
		return time.Time{}, time.Time{}, errors.New("bad filter")
	}
	parse := func(v string) (time.Time, error) {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t, nil
		}
		return time.Parse("2006-01-02", v)
	}
	a, err := parse(m[3])
	if err != nil {
		return a, a, errors.New("bad filter time")
	}
	b, err := parse(m[6])
	if err != nil {
		return a, b, errors.New("bad filter time")
	}
	return a, b, nil
}

// pointTime is the time a filter compares for dataType.
func pointTime(dataType string, p googlehealth.DataPoint) time.Time {
	switch {
	case p.Steps != nil:
		return p.Steps.Interval.StartTime
	case p.HeartRate != nil:
		return p.HeartRate.SampleTime.PhysicalTime
	case p.Weight != nil:
		return p.Weight.SampleTime.PhysicalTime
	case p.OxygenSaturation != nil:
		return p.OxygenSaturation.SampleTime.PhysicalTime
	case p.Sleep != nil:
		return p.Sleep.Interval.EndTime
	case p.DailyRestingHeartRate != nil:
		return p.DailyRestingHeartRate.Date.Time(time.UTC)
	case p.DailyOxygenSaturation != nil:
		return p.DailyOxygenSaturation.Date.Time(time.UTC)
	}
	return time.Time{}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, u *User, g *grant) {
	dataType := r.PathValue("type")
	if _, ok := googlehealth.KindOf(dataType); !ok {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "")
		return
	}
	if !granted(g, scopeFor(dataType)) {
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "")
		return
	}
	q := r.URL.Query()
	var start, end time.Time
	if f := q.Get("filter"); f != "" {
		var err error
		if start, end, err = parseFilter(dataType, f); err != nil {
			apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "")
			return
		}
	}
	size := s.cfg.DefaultPageSize
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > googlehealth.MaxPageSize {
			apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "")
			return
		}
		size = n
	}
	if dataType == googlehealth.TypeSleep {
		size = min(size, 25)
	}
	// A page token is bound to the query it came from.
	bind := sha256.Sum256([]byte(dataType + "\x00" + q.Get("filter") + "\x00" + strconv.Itoa(size)))
	offset := 0
	if tok := q.Get("pageToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) < 9 || !bytes.Equal(raw[:8], bind[:8]) {
			apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "")
			return
		}
		offset, err = strconv.Atoi(string(raw[8:]))
		if err != nil {
			apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "")
			return
		}
	}
	s.mu.Lock()
	var match []googlehealth.DataPoint
	for _, p := range s.points[u.HealthUserID][dataType] {
		t := pointTime(dataType, p)
		if !start.IsZero() && (t.Before(start) || !t.Before(end)) {
			continue
		}
		match = append(match, p)
	}
	s.mu.Unlock()
	sort.SliceStable(match, func(i, j int) bool { return pointTime(dataType, match[i]).After(pointTime(dataType, match[j])) })
	page := googlehealth.Page{DataPoints: []googlehealth.DataPoint{}}
	if offset < len(match) {
		page.DataPoints = match[offset:min(offset+size, len(match))]
	}
	if offset+size < len(match) {
		page.NextPageToken = base64.RawURLEncoding.EncodeToString(append(bind[:8:8], []byte(strconv.Itoa(offset+size))...))
	}
	writeJSON(w, http.StatusOK, page)
}

func validDate(d googlehealth.Date) bool {
	return d.Year > 1900 && d.Month >= 1 && d.Month <= 12 && d.Day >= 1 && d.Day <= 31
}

// rollup serves steps/dataPoints:dailyRollUp: per civil day in the user's
// time zone, overlapping minutes from several sources counted once (the
// highest count of that minute).
func (s *Server) rollup(w http.ResponseWriter, r *http.Request, u *User, g *grant) {
	if r.PathValue("type") != googlehealth.TypeSteps || r.PathValue("op") != "dataPoints:dailyRollUp" {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "")
		return
	}
	if !granted(g, scopeFor(googlehealth.TypeSteps)) {
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", "")
		return
	}
	var req googlehealth.DailyRollupRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(body, &req); err != nil || !validDate(req.Range.Start) || !validDate(req.Range.End) || req.WindowSizeDays != 1 {
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "")
		return
	}
	loc, err := time.LoadLocation(u.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	start, end := req.Range.Start.Time(loc), req.Range.End.Time(loc)
	if !end.After(start) || end.Sub(start) > 90*24*time.Hour {
		apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "")
		return
	}
	perMinute := map[time.Time]int64{}
	s.mu.Lock()
	for _, p := range s.points[u.HealthUserID][googlehealth.TypeSteps] {
		if p.Steps == nil {
			continue
		}
		t := p.Steps.Interval.StartTime.Truncate(time.Minute)
		if t.Before(start) || !t.Before(end) {
			continue
		}
		perMinute[t] = max(perMinute[t], int64(p.Steps.Count))
	}
	s.mu.Unlock()
	totals := map[string]int64{}
	for t, n := range perMinute {
		totals[googlehealth.DateOf(t.In(loc)).String()] += n
	}
	var resp googlehealth.RollupResponse
	for d := start; d.Before(end); d = d.AddDate(0, 0, 1) {
		n, ok := totals[googlehealth.DateOf(d).String()]
		if !ok {
			continue
		}
		p := googlehealth.RollupPoint{}
		p.CivilStartTime.Date = googlehealth.DateOf(d)
		p.CivilEndTime.Date = googlehealth.DateOf(d.AddDate(0, 0, 1))
		p.Steps = &struct {
			CountSum googlehealth.Int64 `json:"countSum"`
		}{CountSum: googlehealth.Int64(n)}
		resp.RollupDataPoints = append(resp.RollupDataPoints, p)
	}
	writeJSON(w, http.StatusOK, resp)
}

// Keyset returns the public keyset in Tink's JSON format.
func (s *Server) Keyset() []byte {
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b), 33), b...) }
	var params []byte
	params = protowire.AppendTag(params, 1, protowire.VarintType)
	params = protowire.AppendVarint(params, 3) // SHA256
	params = protowire.AppendTag(params, 2, protowire.VarintType)
	params = protowire.AppendVarint(params, 2) // NIST_P256
	params = protowire.AppendTag(params, 3, protowire.VarintType)
	params = protowire.AppendVarint(params, 2) // DER
	var key []byte
	key = protowire.AppendTag(key, 2, protowire.BytesType)
	key = protowire.AppendBytes(key, params)
	key = protowire.AppendTag(key, 3, protowire.BytesType)
	key = protowire.AppendBytes(key, append([]byte{0}, pad(s.key.X.Bytes())...))
	key = protowire.AppendTag(key, 4, protowire.BytesType)
	key = protowire.AppendBytes(key, append([]byte{0}, pad(s.key.Y.Bytes())...))
	ks := map[string]any{
		"primaryKeyId": s.keyID,
		"key": []map[string]any{{
			"keyData": map[string]string{
				"typeUrl":         "type.googleapis.com/google.crypto.tink.EcdsaPublicKey",
				"value":           base64.StdEncoding.EncodeToString(key),
				"keyMaterialType": "ASYMMETRIC_PUBLIC",
			},
			"status": "ENABLED", "keyId": s.keyID, "outputPrefixType": "TINK",
		}},
	}
	b, _ := json.MarshalIndent(ks, "", "  ")
	return b
}

// WriteKeyset writes the public keyset file for GOOGLE_HEALTH_WEBHOOK_KEYSET.
func (s *Server) WriteKeyset(path string) error {
	return os.WriteFile(path, s.Keyset(), 0o644)
}

// Sign returns the signature header value for body: base64 of
// 0x01 ‖ key id (4 bytes) ‖ DER ECDSA P-256 over sha256(body).
func (s *Server) Sign(body []byte) string {
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, digest[:])
	if err != nil {
		panic(err)
	}
	prefix := make([]byte, 5)
	prefix[0] = 0x01
	binary.BigEndian.PutUint32(prefix[1:], s.keyID)
	return base64.StdEncoding.EncodeToString(append(prefix, sig...))
}

// Notification builds a notification body for a change of dataType over
// [start, end).
func Notification(healthUserID, operation, dataType string, start, end time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"data": map[string]any{
		"version": "1", "healthUserId": healthUserID, "operation": operation, "dataType": dataType,
		"intervals": []map[string]any{{"physicalTimeInterval": map[string]string{
			"startTime": start.UTC().Format(time.RFC3339), "endTime": end.UTC().Format(time.RFC3339)}}},
	}})
	return b
}

// Notify posts a signed notification body to endpoint as Google does
// (Authorization: the webhook secret; the signature header) and returns the
// status answered.
func (s *Server) Notify(ctx context.Context, endpoint string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.WebhookSecret != "" {
		req.Header.Set("Authorization", s.cfg.WebhookSecret)
	}
	req.Header.Set(googlehealth.SignatureHeader, s.Sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// SimulateConsent does what a patient's browser does with a connect link:
// opens startURL (Switchboard's /oauth/google-health/start?link=…), presses
// the page's button (a POST that spends the link and sets the browser
// cookie), follows the redirect to this sandbox's consent screen, which
// approves, and the redirect back to Switchboard's callback with the
// cookie. It returns the final status and body.
func (s *Server) SimulateConsent(ctx context.Context, startURL string) (int, string, error) {
	u, err := url.Parse(startURL)
	if err != nil {
		return 0, "", err
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, startURL, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", nil
	}
	form := url.Values{"link": {u.Query().Get("link")}}
	u.RawQuery = ""
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// DemoData fills days of plausible data for a user ending at now: steps
// per minute from a watch and (overlapping) a phone, heart rate every
// 30 s, a daily resting heart rate and SpO2, a weight each morning and a
// night's sleep.
func (s *Server) DemoData(healthUserID string, days int, now time.Time) {
	watch := &googlehealth.DataSource{RecordingMethod: "PASSIVELY_MEASURED", Platform: "FITBIT"}
	watch.Device = &struct {
		DisplayName  string `json:"displayName,omitempty"`
		Manufacturer string `json:"manufacturer,omitempty"`
		FormFactor   string `json:"formFactor,omitempty"`
	}{DisplayName: "Charge 6", Manufacturer: "Google", FormFactor: "FITNESS_BAND"}
	phone := &googlehealth.DataSource{RecordingMethod: "PASSIVELY_MEASURED", Platform: "ANDROID"}
	end := now.UTC().Truncate(time.Minute)
	start := end.AddDate(0, 0, -days)
	var steps, hr []googlehealth.DataPoint
	for t := start; t.Before(end); t = t.Add(10 * time.Minute) {
		h := t.Hour()
		if h < 7 || h > 21 {
			continue
		}
		n := googlehealth.Int64(20 + (t.Minute()*7+h*13)%60)
		iv := googlehealth.Interval{StartTime: t, EndTime: t.Add(time.Minute)}
		steps = append(steps, googlehealth.DataPoint{DataSource: watch, Steps: &googlehealth.Steps{Count: n, Interval: iv}})
		if t.Minute()%20 == 0 {
			steps = append(steps, googlehealth.DataPoint{DataSource: phone, Steps: &googlehealth.Steps{Count: n - 5, Interval: iv}})
		}
	}
	for t := start; t.Before(end); t = t.Add(30 * time.Second) {
		bpm := googlehealth.Int64(60 + (t.Minute()+t.Hour()*3)%40)
		hr = append(hr, googlehealth.DataPoint{DataSource: watch, HeartRate: &googlehealth.HeartRate{
			BeatsPerMinute: bpm, SampleTime: googlehealth.SampleTime{PhysicalTime: t}}})
	}
	s.AddDataPoints(healthUserID, googlehealth.TypeSteps, steps...)
	s.AddDataPoints(healthUserID, googlehealth.TypeHeartRate, hr...)
	for d := 0; d < days; d++ {
		day := start.AddDate(0, 0, d).Truncate(24 * time.Hour)
		date := googlehealth.DateOf(day)
		s.AddDataPoints(healthUserID, googlehealth.TypeDailyRestingHeartRate, googlehealth.DataPoint{
			DataSource: watch, DailyRestingHeartRate: &googlehealth.DailyRestingHeartRate{Date: date, BeatsPerMinute: googlehealth.Int64(58 + d%5)}})
		s.AddDataPoints(healthUserID, googlehealth.TypeDailyOxygenSaturation, googlehealth.DataPoint{
			DataSource: watch, DailyOxygenSaturation: &googlehealth.DailyOxygenSaturation{Date: date, AveragePercentage: googlehealth.Double(95 + d%3)}})
		s.AddDataPoints(healthUserID, googlehealth.TypeWeight, googlehealth.DataPoint{
			Name:       fmt.Sprintf("users/%s/dataTypes/weight/dataPoints/w%s", healthUserID, hex.EncodeToString([]byte(date.String()))),
			DataSource: phone, Weight: &googlehealth.Weight{WeightGrams: googlehealth.Double(81234.5 - float64(d)*50),
				SampleTime: googlehealth.SampleTime{PhysicalTime: day.Add(7 * time.Hour)}}})
		sl := &googlehealth.Sleep{Interval: googlehealth.Interval{StartTime: day.Add(-2 * time.Hour), EndTime: day.Add(6*time.Hour + 30*time.Minute)}, Type: "STAGES"}
		sl.Summary.MinutesInSleepPeriod, sl.Summary.MinutesAsleep = 510, googlehealth.Int64(470+d%20)
		sl.Metadata.Processed, sl.Metadata.MainSleep = true, true
		s.AddDataPoints(healthUserID, googlehealth.TypeSleep, googlehealth.DataPoint{
			Name:       fmt.Sprintf("users/%s/dataTypes/sleep/dataPoints/s%s", healthUserID, hex.EncodeToString([]byte(date.String()))),
			DataSource: watch, Sleep: sl})
	}
}
