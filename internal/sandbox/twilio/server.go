package twiliosandbox

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard-health/switchboard/internal/sandbox/fault"
	"github.com/switchboard-health/switchboard/internal/sms"
)

const (
	apiVersion = "2010-04-01"
	// defaultCallbackDelay is the pause between status steps.
	defaultCallbackDelay = 300 * time.Millisecond
	// maxBody is Twilio's message body limit, in characters.
	maxBody = 1600
	// maxRequestBody bounds a create request.
	maxRequestBody = 1 << 20
	// poolSender is the number a Messaging Service "picks" for a message.
	poolSender = "+15017122661"
)

var (
	e164        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	alphaSender = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	shortCode   = regexp.MustCompile(`^[0-9]{5,6}$`)
)

// magicTo are recipients whose create fails, like Twilio's test numbers.
var magicTo = map[string]int{
	"+15005550001": 21211, // invalid number
	"+15005550002": 21612, // cannot route
	"+15005550003": 21408, // no international permission
	"+15005550004": 21610, // opted out (STOP)
	"+15005550009": 21614, // not SMS-capable
}

// Config configures a Server.
type Config struct {
	// AccountSID and AuthToken are the credentials the server accepts; the
	// auth token also signs status callbacks.
	AccountSID, AuthToken string
	// CallbackDelay is the pause between status steps (default 300ms).
	CallbackDelay time.Duration
	// FailureRate is the share (0…1) of messages that end undelivered
	// (30003) or failed (30006) instead of delivered.
	FailureRate float64
	// Seed seeds the draw of each message's fate: the same seed gives the
	// same fates in the order messages are accepted.
	Seed int64
}

// Message is a message the server accepted, as a test sees it.
type Message struct {
	SID                 string
	To                  string
	From                string // empty until a Messaging Service picks a sender
	MessagingServiceSID string
	Body                string
	StatusCallback      string
	ValidityPeriod      int // seconds; 0 when not sent
	Status              string
	ErrorCode           int // for undelivered and failed
	CreatedAt           time.Time
	SentAt              time.Time // zero until sent
	UpdatedAt           time.Time
}

// Fault is what one create request suffers (see Server.InjectFaults). The
// zero Fault lets the request through.
type Fault struct {
	// Status answers with this status and a Twilio JSON error, without
	// storing the message. Code is its Twilio code (default 20429 for 429,
	// 20503 for 503, 20500 for other 5xx); RetryAfter sets the Retry-After
	// header; Body replaces the JSON error with a raw body (an HTML 502
	// page from a proxy, say).
	Status     int
	Code       int
	RetryAfter string
	Body       string
	// AcceptThenFail stores the message (it will be sent, as Twilio would)
	// but answers 500 (or Status, when set).
	AcceptThenFail bool
	// Hang stores the message, then waits this long (or until the client
	// gives up) before answering: a timeout after acceptance.
	Hang time.Duration
	// DropConnection closes the connection without answering and without
	// storing the message.
	DropConnection bool
}

// message is a stored message and its planned fate.
type message struct {
	Message
	seq        int
	finalState string // delivered, undelivered or failed
	finalCode  int
}

// Server answers like Twilio's Messaging REST API. It implements
// http.Handler and is safe for concurrent use. Create one with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	callback *http.Client

	mu          sync.Mutex
	msgs        []*message
	bySID       map[string]*message
	faults      []Fault
	rng         *mrand.Rand
	pending     []*message // accepted, lifecycle not started
	createCalls int
	listCalls   int
	fetchCalls  int

	wake chan struct{}

	chaos fault.State
}

// New returns a Server for cfg; a nil logger discards.
func New(cfg Config, logger *slog.Logger) *Server {
	if cfg.CallbackDelay <= 0 {
		cfg.CallbackDelay = defaultCallbackDelay
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		callback: &http.Client{Timeout: 15 * time.Second},
		bySID:    make(map[string]*message),
		rng:      mrand.New(mrand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x5bd1e995)),
		wake:     make(chan struct{}, 1),
	}
	const prefix = "/2010-04-01/Accounts/{AccountSid}/"
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+prefix+"Messages.json", s.create)
	s.mux.HandleFunc("GET "+prefix+"Messages.json", s.list)
	s.mux.HandleFunc("GET "+prefix+"Messages/{file}", s.fetch)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w, r) })
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.applyChaos(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// InjectFaults queues faults for the next create requests: each create
// request, authorized or not, takes the next fault in order.
func (s *Server) InjectFaults(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// Messages returns copies of the stored messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = m.Message
	}
	return out
}

// CreateCalls returns how many create requests arrived.
func (s *Server) CreateCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createCalls
}

// ListCalls returns how many list requests arrived.
func (s *Server) ListCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listCalls
}

// FetchCalls returns how many fetch requests arrived.
func (s *Server) FetchCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetchCalls
}

// authorized checks HTTP Basic auth and the account in the path, answering
// the error itself when they fail.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || !equal(user, s.cfg.AccountSID) || !equal(pass, s.cfg.AuthToken) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	if r.PathValue("AccountSid") != s.cfg.AccountSID {
		notFound(w, r)
		return false
	}
	return true
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// create answers POST .../Messages.json.
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.createCalls++
	var fault Fault
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	s.mu.Unlock()

	if fault.DropConnection {
		s.drop(w)
		return
	}
	if fault.Status != 0 && !fault.AcceptThenFail {
		writeFault(w, fault, fault.Status)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 20001, "Invalid request body")
		return
	}
	m, status, code, msg := validate(r.PostForm)
	if code != 0 {
		writeError(w, status, code, msg)
		return
	}
	stored := s.store(m)
	s.log.Debug("twilio sandbox accepted a message", slog.String("message_sid", stored.SID))

	switch {
	case fault.AcceptThenFail:
		writeFault(w, fault, cmpOr(fault.Status, http.StatusInternalServerError))
		return
	case fault.Hang > 0:
		t := time.NewTimer(fault.Hang)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	writeJSON(w, http.StatusCreated, s.resource(stored.SID))
}

// drop closes the connection without an answer.
func (s *Server) drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// validate checks a create request's form, returning the message or the
// status, Twilio code and message of the error.
func validate(form url.Values) (m Message, status, code int, msg string) {
	bad := func(code int, msg string) (Message, int, int, string) {
		return Message{}, http.StatusBadRequest, code, msg
	}
	m = Message{
		To:                  form.Get("To"),
		From:                form.Get("From"),
		MessagingServiceSID: form.Get("MessagingServiceSid"),
		Body:                form.Get("Body"),
		StatusCallback:      form.Get("StatusCallback"),
	}
	switch {
	case m.To == "":
		return bad(21604, "A 'To' phone number is required.")
	case !e164.MatchString(m.To):
		return bad(21211, "The 'To' number is not a valid phone number.")
	case m.From == "" && m.MessagingServiceSID == "":
		return bad(21603, "A 'From' phone number is required.")
	case m.From != "" && !e164.MatchString(m.From) && !shortCode.MatchString(m.From) && !alphaSender.MatchString(m.From):
		return bad(21606, "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account.")
	case m.Body == "":
		return bad(21602, "Message body is required.")
	case utf8.RuneCountInString(m.Body) > maxBody:
		return bad(21617, "The concatenated message body exceeds the 1600 character limit.")
	}
	if m.StatusCallback != "" {
		u, err := url.Parse(m.StatusCallback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(21609, "The StatusCallback URL is not valid.")
		}
	}
	if v := form.Get("ValidityPeriod"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 36000 {
			// Twilio's own code for this is unconfirmed: 20001 stands for
			// "invalid parameter" here, as for the list filters.
			return bad(20001, "ValidityPeriod must be an integer between 1 and 36000.")
		}
		m.ValidityPeriod = n
	}
	if c, ok := magicTo[m.To]; ok {
		return bad(c, fmt.Sprintf("The 'To' number cannot receive this message (test number, error %d).", c))
	}
	return m, 0, 0, ""
}

// store saves an accepted message, plans its fate and queues its lifecycle.
func (s *Server) store(m Message) *message {
	now := time.Now().UTC().Truncate(time.Second)
	m.SID = newSID("SM")
	m.CreatedAt, m.UpdatedAt = now, now
	m.Status = "queued"
	if m.From == "" {
		m.Status = "accepted" // a Messaging Service has not picked a sender yet
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	stored := &message{Message: m, seq: len(s.msgs), finalState: "delivered"}
	if s.rng.Float64() < s.cfg.FailureRate {
		stored.finalState, stored.finalCode = "undelivered", 30003
		if s.rng.IntN(2) == 1 {
			stored.finalState, stored.finalCode = "failed", 30006
		}
	}
	s.msgs = append(s.msgs, stored)
	s.bySID[m.SID] = stored
	s.pending = append(s.pending, stored)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return stored
}

// list answers GET .../Messages.json.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.listCalls++
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	pageSize := 50
	if v := q.Get("PageSize"); v != "" {
		if pageSize, err = strconv.Atoi(v); err != nil || pageSize < 1 || pageSize > 1000 {
			writeError(w, http.StatusBadRequest, 20001, "PageSize must be between 1 and 1000.")
			return
		}
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 0 {
			writeError(w, http.StatusBadRequest, 20001, "Page must be a non-negative integer.")
			return
		}
	}

	s.mu.Lock()
	var matched []*message
	for _, m := range s.msgs {
		if f.match(&m.Message) {
			matched = append(matched, m)
		}
	}
	// Newest first, as Twilio lists.
	slices.SortFunc(matched, func(a, b *message) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return b.seq - a.seq
	})
	start := min(page*pageSize, len(matched))
	end := min(start+pageSize, len(matched))
	resources := make([]resource, 0, end-start)
	for _, m := range matched[start:end] {
		resources = append(resources, s.resourceLocked(m))
	}
	s.mu.Unlock()

	base := url.Values{}
	for k, v := range q {
		if k != "Page" && k != "PageToken" && k != "PageSize" {
			base[k] = v
		}
	}
	pageURI := func(p int) string {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(p))
		if p > 0 {
			v.Set("PageToken", "PA"+strconv.Itoa(p))
		}
		return r.URL.Path + "?" + v.Encode()
	}
	body := listPage{
		Messages:     resources,
		Page:         page,
		PageSize:     pageSize,
		Start:        start,
		End:          max(end-1, start),
		FirstPageURI: pageURI(0),
		URI:          pageURI(page),
	}
	if end < len(matched) {
		next := pageURI(page + 1)
		body.NextPageURI = &next
	}
	if page > 0 {
		prev := pageURI(page - 1)
		body.PreviousPageURI = &prev
	}
	writeJSON(w, http.StatusOK, body)
}

// fetch answers GET .../Messages/{Sid}.json.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.fetchCalls++
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok {
		notFound(w, r)
		return
	}
	s.mu.Lock()
	_, known := s.bySID[sid]
	s.mu.Unlock()
	if !known {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, s.resource(sid))
}

// filter is a list request's filters.
type filter struct {
	to, from      string
	sentOn        *dateRange // DateSent=
	after, before *dateRange // DateSent>=, DateSent<=
}

// dateRange is a DateSent value: a whole day (YYYY-MM-DD) or an instant.
type dateRange struct{ from, to time.Time } // [from, to]

func parseDateRange(v string) (*dateRange, error) {
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		return &dateRange{from: d, to: d.Add(24*time.Hour - time.Nanosecond)}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return &dateRange{from: t, to: t}, nil
	}
	return nil, fmt.Errorf("Invalid date value: %q", v)
}

func parseFilter(q url.Values) (filter, error) {
	f := filter{to: q.Get("To"), from: q.Get("From")}
	for key, dst := range map[string]**dateRange{"DateSent": &f.sentOn, "DateSent>": &f.after, "DateSent<": &f.before} {
		if v := q.Get(key); v != "" {
			r, err := parseDateRange(v)
			if err != nil {
				return filter{}, err
			}
			*dst = r
		}
	}
	return f, nil
}

func (f filter) match(m *Message) bool {
	if f.to != "" && m.To != f.to || f.from != "" && m.From != f.from {
		return false
	}
	if f.sentOn == nil && f.after == nil && f.before == nil {
		return true
	}
	if m.SentAt.IsZero() {
		return false // not sent yet: no date_sent to compare
	}
	switch {
	case f.sentOn != nil && (m.SentAt.Before(f.sentOn.from) || m.SentAt.After(f.sentOn.to)):
		return false
	case f.after != nil && m.SentAt.Before(f.after.from):
		return false
	case f.before != nil && m.SentAt.After(f.before.to):
		return false
	}
	return true
}

// resource is Twilio's Message resource JSON.
type resource struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

// listPage is Twilio's list page JSON.
type listPage struct {
	End             int        `json:"end"`
	FirstPageURI    string     `json:"first_page_uri"`
	Messages        []resource `json:"messages"`
	NextPageURI     *string    `json:"next_page_uri"`
	Page            int        `json:"page"`
	PageSize        int        `json:"page_size"`
	PreviousPageURI *string    `json:"previous_page_uri"`
	Start           int        `json:"start"`
	URI             string     `json:"uri"`
}

func (s *Server) resource(sid string) resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resourceLocked(s.bySID[sid])
}

func (s *Server) resourceLocked(m *message) resource {
	base := fmt.Sprintf("/2010-04-01/Accounts/%s/Messages/%s", s.cfg.AccountSID, m.SID)
	res := resource{
		AccountSID:  s.cfg.AccountSID,
		APIVersion:  apiVersion,
		Body:        m.Body,
		DateCreated: rfc2822(m.CreatedAt),
		DateUpdated: rfc2822(m.UpdatedAt),
		Direction:   "outbound-api",
		NumMedia:    "0",
		NumSegments: strconv.Itoa(segmentCount(m.Body)),
		PriceUnit:   "USD",
		SID:         m.SID,
		Status:      m.Status,
		To:          m.To,
		URI:         base + ".json",
		SubresourceURIs: map[string]string{
			"media":    base + "/Media.json",
			"feedback": base + "/Feedback.json",
		},
	}
	if m.From != "" {
		res.From = &m.From
	}
	if m.MessagingServiceSID != "" {
		res.MessagingServiceSID = &m.MessagingServiceSID
		if m.Status == "accepted" {
			res.NumSegments = "0" // no sender picked yet
		}
	}
	if !m.SentAt.IsZero() {
		d := rfc2822(m.SentAt)
		res.DateSent = &d
	}
	if m.ErrorCode != 0 {
		code, msg := m.ErrorCode, errorMessages[m.ErrorCode]
		res.ErrorCode, res.ErrorMessage = &code, &msg
	}
	return res
}

var errorMessages = map[int]string{
	30003: "Unreachable destination handset",
	30006: "Landline or unreachable carrier",
}

// rfc2822 formats a time as Twilio does: "Mon, 02 Jan 2006 15:04:05 +0000".
func rfc2822(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func newSID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// twilioError is Twilio's JSON error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, twilioError{
		Code: code, Message: msg, Status: status,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
}

// writeFault answers with a fault's status, Retry-After and body.
func writeFault(w http.ResponseWriter, f Fault, status int) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", http.DetectContentType([]byte(f.Body)))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, f.Body)
		return
	}
	code := f.Code
	if code == 0 {
		switch {
		case status == http.StatusTooManyRequests:
			code = 20429
		case status == http.StatusServiceUnavailable:
			code = 20503
		case status >= 500:
			code = 20500
		}
	}
	writeError(w, status, code, http.StatusText(status))
}

func segmentCount(body string) int {
	n, _ := sms.Segments(body)
	return n
}
