package telnyxsandbox

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
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

	"github.com/switchboard-health/switchboard/internal/sandbox/fault"
)

const (
	// defaultCallbackDelay is the pause between status steps.
	defaultCallbackDelay = 300 * time.Millisecond
	// maxRequestBody bounds a create request.
	maxRequestBody = 1 << 20
	// ProfileID is the sandbox's one messaging profile, listed by
	// GET /v2/messaging_profiles. Creates accept any profile id.
	ProfileID = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"
	// PoolNumber is the number the profile's "number pool" sends from
	// when a create names a profile but no from.
	PoolNumber = "+15550100001"
)

var (
	e164        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	shortCode   = regexp.MustCompile(`^[0-9]{5,6}$`)
	alphaSender = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
)

// Magic recipients whose create fails, like a carrier would answer them.
const (
	// InvalidNumber fails with 10002 (invalid phone number), HTTP 400.
	InvalidNumber = "+15005550001"
	// OptedOutNumber fails with 40300 (blocked due to STOP), HTTP 409, as
	// does any number that sent a STOP keyword through SendInbound.
	OptedOutNumber = "+15005550004"
)

// Config configures a Server.
type Config struct {
	// APIKey is the Bearer token the server accepts.
	APIKey string
	// PrivateKey signs webhooks; nil generates one (see PublicKeyBase64).
	PrivateKey ed25519.PrivateKey
	// CallbackDelay is the pause between status steps and between webhook
	// delivery attempts (default 300ms).
	CallbackDelay time.Duration
	// FailureRate is the share (0…1) of messages that end delivery_failed
	// (40006 or 40001) instead of delivered.
	FailureRate float64
	// Seed seeds the draw of each message's fate: the same seed gives the
	// same fates in the order messages are accepted.
	Seed int64
	// RecordDelay is how long after it was stored a message becomes
	// searchable in GET /v2/detail_records (0, the default: at once), as
	// real Telnyx's detail records may lag (telnyx.Config.DetailRecordLag).
	// Only the search lags: GET /v2/messages/{id} and the webhooks do not.
	RecordDelay time.Duration
	// Now is the clock RecordDelay is measured on (default time.Now): a
	// test moves it forward instead of sleeping.
	Now func() time.Time
}

// Message is a message the server holds, as a test sees it: an accepted
// outbound message, or an inbound one posted with SendInbound.
type Message struct {
	ID                 string
	Direction          string // outbound or inbound
	To                 string
	From               string
	MessagingProfileID string
	Text               string
	Type               string
	WebhookURL         string
	UseProfileWebhooks bool
	Parts              int
	// Status is to[0].status: queued, sent, delivered or delivery_failed
	// (outbound); webhook_delivered (inbound).
	Status    string
	ErrorCode string // for delivery_failed
	CreatedAt time.Time
	SentAt    time.Time // zero until sent
	UpdatedAt time.Time
}

// Fault is what one create request suffers (see Server.InjectFaults). The
// zero Fault lets the request through.
type Fault struct {
	// Status answers with this status and a Telnyx JSON error, without
	// storing the message. Code is its Telnyx code (default 10011 for 429,
	// 10007 for 5xx, 10015 otherwise); RetryAfter sets the Retry-After
	// header; Header adds more (Retry-After-Ms, X-Ratelimit-Reset …); Body
	// replaces the JSON error with a raw body (an HTML 502 page from a
	// proxy, say).
	Status     int
	Code       string
	RetryAfter string
	Header     http.Header
	Body       string
	// AcceptThenFail stores the message (it will be sent, as Telnyx would)
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
	finalState string // delivered or delivery_failed
	finalCode  string
}

// Server answers like Telnyx's API v2 for messaging. It implements
// http.Handler and is safe for concurrent use. Create one with New.
type Server struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	callback *http.Client

	mu           sync.Mutex
	msgs         []*message
	byID         map[string]*message
	blocked      map[string]bool // recipients that sent STOP
	faults       []Fault
	rng          *mrand.Rand
	pending      []*message // accepted, lifecycle not started
	createCalls  int
	fetchCalls   int
	recordCalls  int
	profileCalls int

	wake chan struct{}

	chaos fault.State
}

// New returns a Server for cfg; a nil logger discards. It panics if no
// private key is given and none can be generated.
func New(cfg Config, logger *slog.Logger) *Server {
	if cfg.CallbackDelay <= 0 {
		cfg.CallbackDelay = defaultCallbackDelay
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PrivateKey == nil {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(fmt.Sprintf("telnyx sandbox: error generating a signing key: %v", err))
		}
		cfg.PrivateKey = key
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		log:      logger,
		callback: &http.Client{Timeout: 15 * time.Second},
		byID:     make(map[string]*message),
		blocked:  make(map[string]bool),
		rng:      mrand.New(mrand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x7e1e9a)),
		wake:     make(chan struct{}, 1),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v2/messages", s.create)
	s.mux.HandleFunc("GET /v2/messages/{id}", s.fetch)
	s.mux.HandleFunc("GET /v2/detail_records", s.detailRecords)
	s.mux.HandleFunc("GET /v2/messaging_profiles", s.profiles)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "10005", "Resource not found", "")
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.applyChaos(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// PublicKeyBase64 returns the webhook verification key as Telnyx's portal
// shows it: standard base64 of the raw 32-byte Ed25519 public key (the
// value of TELNYX_PUBLIC_KEY).
func (s *Server) PublicKeyBase64() string {
	return base64.StdEncoding.EncodeToString(s.cfg.PrivateKey.Public().(ed25519.PublicKey))
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

// FetchCalls returns how many GET /v2/messages/{id} requests arrived.
func (s *Server) FetchCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetchCalls
}

// RecordCalls returns how many detail-record searches arrived.
func (s *Server) RecordCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recordCalls
}

// ProfileCalls returns how many messaging-profile lists (probes) arrived.
func (s *Server) ProfileCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profileCalls
}

// authorized checks the Bearer API key, answering 401 (10009) itself when
// it fails.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.APIKey)) != 1 {
		writeError(w, http.StatusUnauthorized, "10009", "Authentication failed",
			"The required authentication headers were either invalid or not included in the request.")
		return false
	}
	return true
}

// createRequest is the body of POST /v2/messages.
type createRequest struct {
	From               string `json:"from"`
	MessagingProfileID string `json:"messaging_profile_id"`
	To                 string `json:"to"`
	Text               string `json:"text"`
	Type               string `json:"type"`
	WebhookURL         string `json:"webhook_url"`
	UseProfileWebhooks *bool  `json:"use_profile_webhooks"`
}

// create answers POST /v2/messages.
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.createCalls++
	var fault Fault
	if len(s.faults) > 0 {
		fault, s.faults = s.faults[0], s.faults[1:]
	}
	s.mu.Unlock()

	if fault.DropConnection {
		drop(w)
		return
	}
	if fault.Status != 0 && !fault.AcceptThenFail {
		writeFault(w, fault, fault.Status)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	// Reading the whole body also lets net/http notice a client that hangs
	// up during a Hang fault.
	var req createRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err == nil {
		err = json.Unmarshal(raw, &req)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "10015", "Bad Request", "The request failed because it was not well-formed.")
		return
	}
	m, status, code, pointer := s.validate(req)
	switch code {
	case "":
	case "40300":
		// Telnyx's detail quotes both numbers: clients must not repeat it.
		writeError(w, status, code, errorTitles[code],
			fmt.Sprintf("Messages cannot be sent from %s to %s due to an existing block rule.", cmpOrString(req.From, PoolNumber), req.To))
		return
	default:
		writeErrorAt(w, status, code, errorTitles[code], pointer)
		return
	}
	stored := s.store(m)
	s.log.Debug("telnyx sandbox accepted a message", slog.String("vendor_message_id", stored.ID))

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
	writeJSON(w, http.StatusOK, map[string]any{"data": s.resource(stored.ID)})
}

// validate checks a create request, returning the message or the status,
// Telnyx code and JSON pointer of the error.
func (s *Server) validate(req createRequest) (m Message, status int, code, pointer string) {
	bad := func(code, pointer string) (Message, int, string, string) {
		return Message{}, http.StatusBadRequest, code, pointer
	}
	m = Message{
		Direction:          "outbound",
		To:                 req.To,
		From:               req.From,
		MessagingProfileID: req.MessagingProfileID,
		Text:               req.Text,
		Type:               cmpOrString(req.Type, "SMS"),
		WebhookURL:         req.WebhookURL,
		UseProfileWebhooks: req.UseProfileWebhooks == nil || *req.UseProfileWebhooks,
	}
	switch {
	case m.To == "":
		return bad("10004", "/to")
	case !strings.HasPrefix(m.To, "+"):
		return bad("10016", "/to")
	case !e164.MatchString(m.To) || m.To == InvalidNumber:
		return bad("10002", "/to")
	case m.From == "" && m.MessagingProfileID == "":
		return bad("10004", "/from")
	case m.From != "" && !e164.MatchString(m.From) && !shortCode.MatchString(m.From) && !alphaSender.MatchString(m.From):
		return bad("10002", "/from")
	case m.Text == "":
		return bad("10004", "/text")
	case m.Type != "SMS" && m.Type != "MMS":
		return bad("10015", "/type")
	}
	if m.WebhookURL != "" {
		u, err := url.Parse(m.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("10003", "/webhook_url")
		}
	}
	s.mu.Lock()
	blocked := s.blocked[m.To]
	s.mu.Unlock()
	if blocked || m.To == OptedOutNumber {
		return Message{}, http.StatusConflict, "40300", ""
	}
	if m.From == "" {
		m.From = PoolNumber // the profile's number pool picked a sender
	}
	return m, 0, "", ""
}

// store saves an accepted message, plans its fate and queues its lifecycle.
func (s *Server) store(m Message) *message {
	now := time.Now().UTC()
	m.ID = newUUID()
	m.CreatedAt, m.UpdatedAt = now, now
	m.Status = "queued"
	m.Parts = segments(m.Text)

	s.mu.Lock()
	defer s.mu.Unlock()
	stored := &message{Message: m, seq: len(s.msgs), finalState: "delivered"}
	if s.rng.Float64() < s.cfg.FailureRate {
		stored.finalState, stored.finalCode = "delivery_failed", "40006"
		if s.rng.IntN(2) == 1 {
			stored.finalCode = "40001"
		}
	}
	s.msgs = append(s.msgs, stored)
	s.byID[m.ID] = stored
	s.pending = append(s.pending, stored)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return stored
}

// fetch answers GET /v2/messages/{id}.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.fetchCalls++
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	_, known := s.byID[id]
	s.mu.Unlock()
	if !known {
		writeError(w, http.StatusNotFound, "10005", "Resource not found", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": s.resource(id)})
}

// profiles answers GET /v2/messaging_profiles with the one sandbox profile.
func (s *Server) profiles(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.profileCalls++
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	size, ok := pageParam(r.URL.Query(), "page[size]", 20, 250)
	if !ok {
		writeErrorAt(w, http.StatusBadRequest, "10015", "Bad Request", "/page/size")
		return
	}
	data := []any{map[string]any{
		"record_type": "messaging_profile", "id": ProfileID, "name": "Switchboard sandbox",
		"enabled": true, "webhook_url": "", "whitelisted_destinations": []string{"US", "CA"},
	}}
	if size < 1 {
		data = data[:0]
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data": data,
		"meta": map[string]int{"page_number": 1, "page_size": size, "total_pages": 1, "total_results": 1},
	})
}

// detailRecords answers GET /v2/detail_records for record_type messaging:
// filters direction, cld, cli, profile_id (equality), created_at[gte] and
// created_at[lt] (a date or an RFC 3339 time); sort created_at or
// -created_at (default newest first); page[number], page[size] (1…50).
// A message's record is listed once Config.RecordDelay has passed since it
// was stored (at once by default).
func (s *Server) detailRecords(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.recordCalls++
	s.mu.Unlock()
	if !s.authorized(w, r) {
		return
	}
	q := r.URL.Query()
	if q.Get("filter[record_type]") != "messaging" {
		writeErrorAt(w, http.StatusBadRequest, "10015", "Bad Request", "/filter/record_type")
		return
	}
	var gte, lt time.Time
	for key, dst := range map[string]*time.Time{"filter[created_at][gte]": &gte, "filter[created_at][lt]": &lt} {
		if v := q.Get(key); v != "" {
			t, err := parseTimeFilter(v)
			if err != nil {
				writeErrorAt(w, http.StatusBadRequest, "10015", "Bad Request", "/filter/created_at")
				return
			}
			*dst = t
		}
	}
	number, ok1 := pageParam(q, "page[number]", 1, 1<<20)
	size, ok2 := pageParam(q, "page[size]", 20, 50)
	sort := q.Get("sort")
	if !ok1 || !ok2 || number < 1 || size < 1 || (sort != "" && sort != "created_at" && sort != "-created_at") {
		writeErrorAt(w, http.StatusBadRequest, "10015", "Bad Request", "/page")
		return
	}
	eq := map[string]func(*Message) string{
		"filter[direction]":  func(m *Message) string { return m.Direction },
		"filter[cld]":        func(m *Message) string { return m.To },
		"filter[cli]":        func(m *Message) string { return m.From },
		"filter[profile_id]": func(m *Message) string { return cmpOrString(m.MessagingProfileID, ProfileID) },
	}

	indexed := s.cfg.Now().Add(-s.cfg.RecordDelay) // stored no later than this
	s.mu.Lock()
	var matched []*message
	for _, m := range s.msgs {
		ok := !m.CreatedAt.After(indexed) &&
			(gte.IsZero() || !m.CreatedAt.Before(gte)) && (lt.IsZero() || m.CreatedAt.Before(lt))
		for key, field := range eq {
			if v := q.Get(key); v != "" && field(&m.Message) != v {
				ok = false
			}
		}
		if ok {
			matched = append(matched, m)
		}
	}
	slices.SortFunc(matched, func(a, b *message) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	if sort != "created_at" {
		slices.Reverse(matched)
	}
	start := min((number-1)*size, len(matched))
	end := min(start+size, len(matched))
	records := make([]detailRecord, 0, end-start)
	for _, m := range matched[start:end] {
		records = append(records, recordOf(m))
	}
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, map[string]any{
		"data": records,
		"meta": map[string]int{
			"page_number": number, "page_size": size,
			"total_pages": (len(matched) + size - 1) / size, "total_results": len(matched),
		},
	})
}

// parseTimeFilter reads a created_at filter: a date (midnight UTC) or an
// RFC 3339 time.
func parseTimeFilter(v string) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		return d, nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

func pageParam(q url.Values, key string, def, maxValue int) (int, bool) {
	v := q.Get(key)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxValue {
		return 0, false
	}
	return n, true
}

// detailRecord is a message detail record as GET /v2/detail_records lists
// it (the messaging fields the sandbox knows).
type detailRecord struct {
	RecordType               string   `json:"record_type"`
	UUID                     string   `json:"uuid"`
	Direction                string   `json:"direction"`
	CLD                      string   `json:"cld"`
	CLI                      string   `json:"cli"`
	ProfileID                string   `json:"profile_id"`
	MessageType              string   `json:"message_type"`
	Parts                    int      `json:"parts"`
	Status                   *string  `json:"status"`
	Errors                   []string `json:"errors"`
	DeliveryStatusWebhookURL string   `json:"delivery_status_webhook_url"`
	CreatedAt                string   `json:"created_at"`
	UpdatedAt                string   `json:"updated_at"`
	SentAt                   *string  `json:"sent_at"`
	CompletedAt              *string  `json:"completed_at"`
}

// mdrStatus maps a message's status to a detail record's final status;
// records of messages still in flight have none.
var mdrStatus = map[string]string{
	"delivered":         "delivered",
	"delivery_failed":   "failed",
	"webhook_delivered": "received",
}

func recordOf(m *message) detailRecord {
	rec := detailRecord{
		RecordType:               "message_detail_record",
		UUID:                     m.ID,
		Direction:                m.Direction,
		CLD:                      m.To,
		CLI:                      m.From,
		ProfileID:                cmpOrString(m.MessagingProfileID, ProfileID),
		MessageType:              m.Type,
		Parts:                    m.Parts,
		Errors:                   []string{},
		DeliveryStatusWebhookURL: m.WebhookURL,
		CreatedAt:                timestamp(m.CreatedAt),
		UpdatedAt:                timestamp(m.UpdatedAt),
	}
	if st, ok := mdrStatus[m.Status]; ok {
		rec.Status = &st
		done := timestamp(m.UpdatedAt)
		rec.CompletedAt = &done
	}
	if !m.SentAt.IsZero() {
		sent := timestamp(m.SentAt)
		rec.SentAt = &sent
	}
	if m.ErrorCode != "" {
		rec.Errors = []string{m.ErrorCode}
	}
	return rec
}

// resource is Telnyx's message resource JSON.
type resource struct {
	RecordType         string          `json:"record_type"`
	Direction          string          `json:"direction"`
	ID                 string          `json:"id"`
	Type               string          `json:"type"`
	MessagingProfileID string          `json:"messaging_profile_id"`
	From               resourceParty   `json:"from"`
	To                 []resourceParty `json:"to"`
	Text               string          `json:"text"`
	Media              []any           `json:"media"`
	WebhookURL         string          `json:"webhook_url"`
	WebhookFailoverURL string          `json:"webhook_failover_url"`
	Encoding           string          `json:"encoding"`
	Parts              int             `json:"parts"`
	Tags               []string        `json:"tags"`
	Cost               *resourceCost   `json:"cost"`
	ReceivedAt         string          `json:"received_at"`
	SentAt             *string         `json:"sent_at"`
	CompletedAt        *string         `json:"completed_at"`
	ValidUntil         string          `json:"valid_until"`
	Errors             []resourceError `json:"errors"`
}

type resourceParty struct {
	PhoneNumber string `json:"phone_number"`
	Carrier     string `json:"carrier"`
	LineType    string `json:"line_type"`
	Status      string `json:"status,omitempty"`
}

type resourceCost struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

type resourceError struct {
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
}

func (s *Server) resource(id string) resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return resourceOf(s.byID[id])
}

func resourceOf(m *message) resource {
	res := resource{
		RecordType:         "message",
		Direction:          m.Direction,
		ID:                 m.ID,
		Type:               m.Type,
		MessagingProfileID: cmpOrString(m.MessagingProfileID, ProfileID),
		From:               resourceParty{PhoneNumber: m.From, Carrier: "Telnyx", LineType: "Wireless"},
		To:                 []resourceParty{{PhoneNumber: m.To, Carrier: "Sandbox Mobile", LineType: "Wireless", Status: m.Status}},
		Text:               m.Text,
		Media:              []any{},
		WebhookURL:         m.WebhookURL,
		Encoding:           "GSM-7",
		Parts:              m.Parts,
		Tags:               []string{},
		Cost:               &resourceCost{Amount: fmt.Sprintf("%.4f", 0.004*float64(m.Parts)), Currency: "USD"},
		ReceivedAt:         timestamp(m.CreatedAt),
		ValidUntil:         timestamp(m.CreatedAt.Add(4 * time.Hour)),
		Errors:             []resourceError{},
	}
	if !isGSM(m.Text) {
		res.Encoding = "UCS-2"
	}
	if !m.SentAt.IsZero() {
		sent := timestamp(m.SentAt)
		res.SentAt = &sent
	}
	if m.Status == "delivered" || m.Status == "delivery_failed" {
		done := timestamp(m.UpdatedAt)
		res.CompletedAt = &done
	}
	if m.ErrorCode != "" {
		res.Errors = []resourceError{{Code: m.ErrorCode, Title: errorTitles[m.ErrorCode]}}
	}
	return res
}

// errorTitles are Telnyx's titles for the codes the sandbox uses.
var errorTitles = map[string]string{
	"10002": "Invalid phone number",
	"10003": "Invalid URL",
	"10004": "Missing required parameter",
	"10005": "Resource not found",
	"10007": "Unexpected error",
	"10009": "Authentication failed",
	"10011": "Too many requests",
	"10015": "Bad Request",
	"10016": "Phone number must be in +E.164 format",
	"40001": "Not routable",
	"40006": "Recipient server unavailable",
	"40300": "Blocked due to STOP message",
}

// timestamp formats a time as Telnyx does: RFC 3339 in UTC, milliseconds.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// newUUID returns a random (version 4) UUID, the form of Telnyx's ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// telnyxError is one element of Telnyx's JSON error body.
type telnyxError struct {
	Code   string            `json:"code"`
	Title  string            `json:"title"`
	Detail string            `json:"detail,omitempty"`
	Source map[string]string `json:"source,omitempty"`
	Meta   map[string]string `json:"meta,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, title, detail string) {
	writeJSON(w, status, map[string]any{"errors": []telnyxError{{
		Code: code, Title: title, Detail: detail,
		Meta: map[string]string{"url": "https://developers.telnyx.com/docs/overview/errors/" + code},
	}}})
}

func writeErrorAt(w http.ResponseWriter, status int, code, title, pointer string) {
	e := telnyxError{Code: code, Title: title, Meta: map[string]string{"url": "https://developers.telnyx.com/docs/overview/errors/" + code}}
	if pointer != "" {
		e.Source = map[string]string{"pointer": pointer}
	}
	writeJSON(w, status, map[string]any{"errors": []telnyxError{e}})
}

// writeFault answers with a fault's status, headers and body.
func writeFault(w http.ResponseWriter, f Fault, status int) {
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
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
	if code == "" {
		switch {
		case status == http.StatusTooManyRequests:
			code = "10011"
		case status >= 500:
			code = "10007"
		default:
			code = "10015"
		}
	}
	writeError(w, status, code, cmpOrString(errorTitles[code], http.StatusText(status)), "")
}
