package telnyx

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// API paths (below the base URL).
const (
	pathMessages          = "/v2/messages"
	pathDetailRecords     = "/v2/detail_records"
	pathMessagingProfiles = "/v2/messaging_profiles"
)

// Reconciliation bounds (FindSent).
const (
	// clockSkew widens the search window: Telnyx's clock and ours differ.
	clockSkew = time.Minute
	// findPageSize and findMaxPages bound the detail-record search, sorted
	// newest first: it goes on until a record older than the attempt (less
	// the skew) or the last page. findMaxFetches bounds how many candidates
	// are fetched to compare their webhook URL (?m=, decisive) and text
	// with the message looked for. A recipient with more records in the
	// window than that cannot be read whole: the look-up reports
	// sms.ErrLookupIncomplete rather than an absence it did not prove (a
	// bound of 3 pages and 5 fetches once made a busy number's copy look
	// absent and sent it twice).
	findPageSize   = 20
	findMaxPages   = 50
	findMaxFetches = 100
)

// codeNotFound is Telnyx's "resource not found".
const codeNotFound = "10005"

// messageID is what a Telnyx message id may hold (they are UUIDs); it is
// checked before going into a path.
var messageID = regexp.MustCompile(`^[A-Za-z0-9-]{1,100}$`)

// ErrRecordsNotSettled is wrapped by FindSent's error when no message was
// found but the attempt is younger than Config.DetailRecordLag, so Telnyx
// may not have indexed it yet. The error is sms.ClassThrottled, with
// RetryAfter the time left.
var ErrRecordsNotSettled = fmt.Errorf("telnyx: detail records not settled yet: %w", sms.ErrRecordsNotSettled)

// Client sends SMS through Telnyx's Messaging API v2 with plain net/http.
// It implements sms.Sender and sms.ReportParser, and verifies webhooks. It
// is safe for concurrent use.
type Client struct {
	cfg       Config
	base      *url.URL
	publicKey ed25519.PublicKey
	http      *http.Client
	now       func() time.Time
}

var _ sms.Adapter = (*Client)(nil)

// New returns a Client for cfg. transport is shared by every call (pass a
// tuned *http.Transport whose MaxIdleConnsPerHost covers the workers); nil
// means NewTransport(). It returns an error when cfg is invalid.
func New(cfg Config, transport http.RoundTripper) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("error configuring telnyx: %w", err)
	}
	base, err := parseBaseURL(cfg.APIBaseURL)
	if err != nil {
		return nil, fmt.Errorf("error configuring telnyx: %w", err)
	}
	key, err := ParsePublicKey(cfg.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("error configuring telnyx: %w", err)
	}
	if transport == nil {
		transport = NewTransport()
	}
	return &Client{
		cfg:       cfg,
		base:      base,
		publicKey: key,
		http:      &http.Client{Transport: transport, Timeout: cfg.RequestTimeout, CheckRedirect: noRedirects},
		now:       time.Now,
	}, nil
}

// Provider returns "telnyx".
func (c *Client) Provider() string { return Provider }

// sendRequest is the body of POST /v2/messages.
type sendRequest struct {
	From               string `json:"from,omitempty"`
	MessagingProfileID string `json:"messaging_profile_id,omitempty"`
	To                 string `json:"to"`
	Text               string `json:"text"`
	Type               string `json:"type"`
	WebhookURL         string `json:"webhook_url,omitempty"`
	UseProfileWebhooks *bool  `json:"use_profile_webhooks,omitempty"`
}

// message is the part of Telnyx's message resource the client reads.
type message struct {
	ID                 string     `json:"id"`
	Direction          string     `json:"direction"`
	MessagingProfileID string     `json:"messaging_profile_id"`
	From               party      `json:"from"`
	To                 []party    `json:"to"`
	Text               string     `json:"text"`
	Parts              int        `json:"parts"`
	WebhookURL         string     `json:"webhook_url"`
	ReceivedAt         string     `json:"received_at"`
	Errors             []apiError `json:"errors"`
}

// party is a from or to[] element of a message.
type party struct {
	PhoneNumber string `json:"phone_number"`
	Status      string `json:"status"`
}

// status is the message's status: its first recipient's.
func (m *message) status() string {
	if len(m.To) == 0 {
		return ""
	}
	return m.To[0].Status
}

func (m *message) accepted() sms.Accepted {
	return sms.Accepted{ProviderMessageID: m.ID, Status: m.status(), Segments: m.Parts}
}

// decodeMessage reads {"data":{message}}; it wraps ErrUndecodable when the
// body is not one or has no id.
func decodeMessage(body []byte) (*message, error) {
	var v struct {
		Data *message `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, jsonError(err))
	}
	if v.Data == nil || v.Data.ID == "" {
		return nil, fmt.Errorf("%w: no message id", ErrUndecodable)
	}
	return v.Data, nil
}

// jsonError keeps a decoding error's kind without the text it quotes.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("invalid json at offset %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("unexpected json type for %s", typ.Field)
	default:
		return errors.New("invalid json")
	}
}

// Send submits m to Telnyx with POST /v2/messages: to, text, type SMS,
// from and/or messaging_profile_id, and m's status callback as webhook_url
// (with use_profile_webhooks false, so reports come only there). It
// returns Telnyx's message id, the first recipient's status and the parts
// count. m.ValidityPeriod is not sent: the Messaging API has no request
// field for it.
//
// Send never retries. On failure it returns a *sms.SendError classified by
// classify: a timeout, reset or 5xx after the request left is
// sms.ClassAmbiguous, and the message must be looked for (FindSent) before
// any resend.
func (c *Client) Send(ctx context.Context, m sms.Outbound) (sms.Accepted, error) {
	req := sendRequest{
		From:               c.cfg.FromNumber,
		MessagingProfileID: c.cfg.MessagingProfileID,
		To:                 m.To,
		Text:               m.Body,
		Type:               "SMS",
	}
	if m.StatusCallbackURL != "" {
		no := false
		req.WebhookURL, req.UseProfileWebhooks = m.StatusCallbackURL, &no
	}
	ex := c.do(ctx, http.MethodPost, pathMessages, nil, req)
	if ex.status < 200 || ex.status >= 300 || ex.err != nil {
		return sms.Accepted{}, classify(attempt{ex: ex, now: c.now()})
	}
	msg, err := decodeMessage(ex.body)
	if err != nil {
		return sms.Accepted{}, classify(attempt{ex: ex, err: err, now: c.now()})
	}
	return msg.accepted(), nil
}

// Fetch returns the message with the given id as Telnyx sees it now (its
// first recipient's current status) with GET /v2/messages/{id}, or
// (nil, nil) when Telnyx answers 404 with code 10005. Errors are
// *sms.SendError; fetching is idempotent, so timeouts and 5xx are
// sms.ClassRetryable. An id that is not a Telnyx id is sms.ClassPermanent,
// without a request.
func (c *Client) Fetch(ctx context.Context, id string) (*sms.Accepted, error) {
	msg, err := c.fetch(ctx, id)
	if err != nil || msg == nil {
		return nil, err
	}
	acc := msg.accepted()
	return &acc, nil
}

func (c *Client) fetch(ctx context.Context, id string) (*message, error) {
	if !messageID.MatchString(id) {
		return nil, &sms.SendError{Provider: Provider, Class: sms.ClassPermanent, Err: errors.New("telnyx: invalid message id")}
	}
	ex := c.do(ctx, http.MethodGet, pathMessages+"/"+url.PathEscape(id), nil, nil)
	if ex.status == http.StatusNotFound && ex.err == nil {
		if errs, ok := decodeErrors(ex.body); ok && hasCode(errs, codeNotFound) {
			return nil, nil
		}
	}
	if ex.status < 200 || ex.status >= 300 || ex.err != nil {
		return nil, classify(attempt{idempotent: true, ex: ex, now: c.now()})
	}
	msg, err := decodeMessage(ex.body)
	if err != nil {
		return nil, classify(attempt{idempotent: true, ex: ex, err: err, now: c.now()})
	}
	return msg, nil
}

// detailRecord is the part of a message detail record FindSent reads
// (GET /v2/detail_records, record_type message_detail_record).
type detailRecord struct {
	RecordType string `json:"record_type"`
	UUID       string `json:"uuid"`
	Direction  string `json:"direction"`
	CLD        string `json:"cld"` // recipient
	CLI        string `json:"cli"` // sender
	ProfileID  string `json:"profile_id"`
	CreatedAt  string `json:"created_at"`
}

type detailRecordPage struct {
	Data []detailRecord `json:"data"`
	Meta struct {
		PageNumber int `json:"page_number"`
		TotalPages int `json:"total_pages"`
	} `json:"meta"`
}

// FindSent lists the messages Telnyx accepted for m since the given time,
// to reconcile an attempt whose outcome was lost. Telnyx's Messaging API
// cannot list messages, so it searches message detail records:
//
//	GET /v2/detail_records?filter[record_type]=messaging&filter[direction]=outbound
//	    &filter[cld]=<m.To>&filter[created_at][gte]=<date>&sort=-created_at&page[size]=20
//
// keeping outbound records to m.To from the configured sender (cli, or
// profile_id without a from number) created no earlier than since minus a
// minute of clock skew, a few pages at most. Records carry no text, so the
// candidates are fetched (GET /v2/messages/{id}, which echoes the
// webhook_url we sent) — except those taken says other messages hold, and
// the oldest first, up to findMaxFetches: one whose webhook_url is m's status callback (it
// holds our message id) is m's copy, sms.Candidate.Tagged, and ends the
// search; one whose webhook_url is another URL is another message's and is
// left out; one without a webhook URL is a candidate when its text is m's
// body. It returns none when there is none.
//
// Telnyx may take a while to index a message: for an attempt younger than
// Config.DetailRecordLag, finding nothing is an error of class
// sms.ClassThrottled wrapping ErrRecordsNotSettled, RetryAfter the time
// left. Other errors are *sms.SendError; reads are idempotent, so
// timeouts and 5xx are sms.ClassRetryable.
func (c *Client) FindSent(ctx context.Context, m sms.Outbound, since time.Time, taken sms.Taken) ([]sms.Candidate, error) {
	cutoff := since.Add(-clockSkew)
	q := url.Values{
		"filter[record_type]": {"messaging"},
		"filter[direction]":   {"outbound"},
		"filter[cld]":         {m.To},
		// A day early: Telnyx documents a date here, not the time zone it
		// reads it in. The exact window is applied below.
		"filter[created_at][gte]": {cutoff.UTC().AddDate(0, 0, -1).Format(time.DateOnly)},
		"sort":                    {"-created_at"},
		"page[size]":              {strconv.Itoa(findPageSize)},
	}
	var candidates []string
	whole := false
	for page := 1; page <= findMaxPages; page++ {
		q.Set("page[number]", strconv.Itoa(page))
		ex := c.do(ctx, http.MethodGet, pathDetailRecords, q, nil)
		if ex.status < 200 || ex.status >= 300 || ex.err != nil {
			return nil, classify(attempt{idempotent: true, ex: ex, now: c.now()})
		}
		var p detailRecordPage
		if err := json.Unmarshal(ex.body, &p); err != nil || p.Data == nil {
			if err == nil {
				err = errors.New("no data")
			} else {
				err = jsonError(err)
			}
			return nil, classify(attempt{idempotent: true, ex: ex, err: fmt.Errorf("%w: %w", ErrUndecodable, err), now: c.now()})
		}
		older := false
		for _, r := range p.Data {
			created, err := time.Parse(time.RFC3339Nano, r.CreatedAt)
			if err == nil && created.Before(cutoff) {
				older = true // sorted newest first: the rest are older too
				continue
			}
			if c.candidate(r, m) {
				candidates = append(candidates, r.UUID)
			}
		}
		if older || len(p.Data) < findPageSize || page >= p.Meta.TotalPages {
			whole = true
			break
		}
	}
	incomplete := func(what string) error {
		return fmt.Errorf("telnyx: %w: more than %s", sms.ErrLookupIncomplete, what)
	}
	if !whole {
		return nil, incomplete(fmt.Sprintf("%d detail records to the recipient since the attempt", findMaxPages*findPageSize))
	}

	// Records other messages hold are theirs: only the rest are read, the
	// oldest first — m's copy, if Telnyx has one, was created when the
	// attempt was made, before any later message to the number.
	candidates, err := sms.Untaken(ctx, taken, candidates)
	if err != nil {
		return nil, err
	}
	slices.Reverse(candidates)
	var out []sms.Candidate
	for i, id := range candidates {
		if i == findMaxFetches {
			// None of those read was tagged as this message's; the rest
			// may hold its copy.
			return nil, incomplete(fmt.Sprintf("%d candidate messages to compare", findMaxFetches))
		}
		msg, err := c.fetch(ctx, id)
		if err != nil {
			return nil, err
		}
		if msg == nil {
			continue
		}
		if tagged, ok := matches(msg, m, cutoff); ok {
			created, _ := time.Parse(time.RFC3339Nano, msg.ReceivedAt)
			out = append(out, sms.Candidate{Accepted: msg.accepted(), CreatedAt: created, Tagged: tagged})
			if tagged {
				return []sms.Candidate{out[len(out)-1]}, nil
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}

	if settled := since.Add(c.cfg.DetailRecordLag); c.now().Before(settled) {
		wait := settled.Sub(c.now())
		return nil, &sms.SendError{Provider: Provider, Class: sms.ClassThrottled, RetryAfter: wait, Err: ErrRecordsNotSettled}
	}
	return nil, nil
}

// candidate reports whether a detail record may be m: outbound, to m.To,
// from the configured sender.
func (c *Client) candidate(r detailRecord, m sms.Outbound) bool {
	switch {
	case r.UUID == "" || !messageID.MatchString(r.UUID):
		return false
	case r.RecordType != "" && r.RecordType != "message_detail_record":
		return false
	case r.Direction != "outbound" || r.CLD != m.To:
		return false
	case c.cfg.FromNumber != "" && r.CLI != "" && r.CLI != c.cfg.FromNumber:
		return false
	case c.cfg.FromNumber == "" && r.ProfileID != "" && r.ProfileID != c.cfg.MessagingProfileID:
		return false
	}
	return true
}

// matches reports whether a fetched message may be m (ok): outbound to
// m.To, received by Telnyx no earlier than cutoff, and with m's status
// callback as its webhook URL (tagged: decisive, it holds our message id)
// or, when either has none, with m's body as its text.
func matches(msg *message, m sms.Outbound, cutoff time.Time) (tagged, ok bool) {
	if msg.Direction != "" && msg.Direction != "outbound" {
		return false, false
	}
	if len(msg.To) == 0 || msg.To[0].PhoneNumber != m.To {
		return false, false
	}
	if at, err := time.Parse(time.RFC3339Nano, msg.ReceivedAt); err == nil && at.Before(cutoff) {
		return false, false
	}
	if m.StatusCallbackURL != "" && msg.WebhookURL != "" {
		ok = msg.WebhookURL == m.StatusCallbackURL && (msg.Text == "" || msg.Text == m.Body)
		return ok, ok
	}
	return false, msg.Text != "" && msg.Text == m.Body
}

// Probe checks that Telnyx answers and accepts our API key with a cheap
// authenticated read: GET /v2/messaging_profiles?page[size]=1. Errors are
// *sms.SendError, classified like Fetch's.
func (c *Client) Probe(ctx context.Context) error {
	ex := c.do(ctx, http.MethodGet, pathMessagingProfiles, url.Values{"page[size]": {"1"}}, nil)
	if ex.status < 200 || ex.status >= 300 || ex.err != nil {
		return classify(attempt{idempotent: true, ex: ex, now: c.now()})
	}
	var v struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ex.body, &v); err != nil || len(v.Data) == 0 {
		return classify(attempt{idempotent: true, ex: ex, err: fmt.Errorf("%w: not a list", ErrUndecodable), now: c.now()})
	}
	return nil
}
