package twilio

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// Reconciliation bounds (FindSent).
const (
	// clockSkew widens the search window: Twilio's clock and ours differ.
	clockSkew = time.Minute
	// findPageSize and findMaxPages bound the list read while reconciling.
	// Twilio lists newest first; the read goes on until it reaches a
	// message older than the attempt (less the skew) or the list's end.
	// A recipient with more than findPageSize*findMaxPages messages in that
	// window cannot be read whole: the look-up reports
	// sms.ErrLookupIncomplete rather than an absence it did not prove.
	findPageSize = 100
	findMaxPages = 10
	// directionOutboundAPI is the direction of a message created through
	// the REST API.
	directionOutboundAPI = "outbound-api"
)

// Client sends SMS through Twilio's Programmable Messaging API with the
// official twilio-go SDK. It implements sms.Sender and is safe for
// concurrent use: every call builds its own small SDK client on the shared
// transport.
type Client struct {
	cfg       Config
	target    *url.URL
	transport http.RoundTripper
	now       func() time.Time
}

var _ sms.Adapter = (*Client)(nil)

// New returns a Client for cfg. transport is shared by every call (pass a
// tuned *http.Transport whose MaxIdleConnsPerHost covers the workers); nil
// means NewTransport(). It returns an error when cfg is invalid.
func New(cfg Config, transport http.RoundTripper) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("error configuring twilio: %w", err)
	}
	target, err := parseBaseURL(cfg.APIBaseURL)
	if err != nil {
		return nil, fmt.Errorf("error configuring twilio: %w", err)
	}
	if transport == nil {
		transport = NewTransport()
	}
	return &Client{cfg: cfg, target: target, transport: transport, now: time.Now}, nil
}

// Provider returns "twilio".
func (c *Client) Provider() string { return Provider }

// api builds the v2010 API service for one call on ctx, and the transport
// that observes it.
func (c *Client) api(ctx context.Context) (*twapi.ApiService, *callTransport) {
	rt := &callTransport{ctx: ctx, base: c.transport, target: c.target}
	tc := &twclient.Client{
		Credentials: twclient.NewCredentials(c.cfg.AccountSID, c.cfg.AuthToken),
		HTTPClient: &http.Client{
			Transport:     rt,
			Timeout:       c.cfg.RequestTimeout,
			CheckRedirect: noRedirects,
		},
	}
	tc.SetAccountSid(c.cfg.AccountSID)
	return twapi.NewApiServiceWithClient(tc), rt
}

// Send submits m to Twilio: To, Body, From or MessagingServiceSid, the
// status callback when m has one, and ValidityPeriod (the shorter of the
// configured one and m's). It returns Twilio's SID, status and segment
// count. On failure it returns a *sms.SendError classified by classify: a
// timeout, reset or 5xx after the request left is sms.ClassAmbiguous, and
// the message must be looked for (FindSent) before any resend.
func (c *Client) Send(ctx context.Context, m sms.Outbound) (sms.Accepted, error) {
	p := &twapi.CreateMessageParams{}
	p.SetTo(m.To).SetBody(m.Body)
	if c.cfg.FromNumber != "" {
		p.SetFrom(c.cfg.FromNumber)
	} else {
		p.SetMessagingServiceSid(c.cfg.MessagingServiceSID)
	}
	if m.StatusCallbackURL != "" {
		p.SetStatusCallback(m.StatusCallbackURL)
	}
	if secs := c.validitySeconds(m.ValidityPeriod); secs > 0 {
		p.SetValidityPeriod(secs)
	}

	api, rt := c.api(ctx)
	msg, err := api.CreateMessage(p)
	s := rt.seen()
	if err = usable(msg, err, s); err != nil {
		return sms.Accepted{}, classify(attempt{err: err, seen: s, now: c.now()})
	}
	return accepted(msg), nil
}

// validitySeconds is the ValidityPeriod to send, in whole seconds within
// Twilio's 1…36000, or 0 to send none.
func (c *Client) validitySeconds(msg time.Duration) int {
	d := c.cfg.ValidityPeriod
	if msg != 0 && (d == 0 || msg < d) {
		d = msg
	}
	if d == 0 {
		return 0
	}
	secs := math.Ceil(d.Seconds())
	return int(min(max(secs, 1), maxValidityPeriod.Seconds()))
}

// FindSent lists the messages Twilio accepted for m since the given time,
// to reconcile an attempt whose outcome was lost. It lists the messages to
// m.To (from the configured number, when there is one), newest first, a few
// small pages at most, and returns those created through the API no earlier
// than since minus a minute of clock skew, with exactly m's body (and the
// configured Messaging Service, when one is used), each with its
// date_created (whole seconds).
//
// Twilio's Message resource does not carry the status callback URL (the
// list and fetch responses have no status_callback field), so a candidate
// is never sms.Candidate.Tagged: two messages with the same body to the
// same number are told apart by creation time (sms decides).
//
// The list is deliberately not filtered by DateSent: a message still queued
// has no date_sent yet, and missing it here would text the patient twice.
// The window is applied to date_created instead.
//
// Copies other messages hold (taken) are never listed.
//
// Errors are *sms.SendError; listing is idempotent, so timeouts and 5xx are
// sms.ClassRetryable.
func (c *Client) FindSent(ctx context.Context, m sms.Outbound, since time.Time, taken sms.Taken) ([]sms.Candidate, error) {
	p := &twapi.ListMessageParams{}
	p.SetTo(m.To)
	if c.cfg.FromNumber != "" {
		p.SetFrom(c.cfg.FromNumber)
	}
	p.SetPageSize(findPageSize)

	api, rt := c.api(ctx)
	cutoff := since.Add(-clockSkew)
	var msgs []twapi.ApiV2010Message
	token, page, whole := "", "", false
	for range findMaxPages {
		resp, err := api.PageMessage(p, token, page)
		s := rt.seen()
		if err = redirected(err, s); err != nil {
			return nil, classify(attempt{idempotent: true, err: err, seen: s, now: c.now()})
		}
		msgs = append(msgs, resp.Messages...)
		if n := len(resp.Messages); n > 0 {
			if created, ok := parseDate(str(resp.Messages[n-1].DateCreated)); ok && created.Before(cutoff) {
				whole = true // newest first: the rest are older still
				break
			}
		}
		if token, page = nextPage(resp.NextPageUri); token == "" && page == "" {
			whole = true
			break
		}
	}
	if !whole {
		return nil, fmt.Errorf("twilio: %w: more than %d messages to the recipient since the attempt", sms.ErrLookupIncomplete, findMaxPages*findPageSize)
	}

	var out []sms.Candidate
	for i := range msgs {
		msg := &msgs[i]
		if str(msg.Sid) == "" || str(msg.Body) != m.Body || str(msg.To) != m.To ||
			str(msg.Direction) != directionOutboundAPI {
			continue
		}
		if c.cfg.FromNumber != "" && str(msg.From) != c.cfg.FromNumber {
			continue
		}
		if c.cfg.MessagingServiceSID != "" && str(msg.MessagingServiceSid) != c.cfg.MessagingServiceSID {
			continue
		}
		created, ok := parseDate(str(msg.DateCreated))
		if !ok || created.Before(cutoff) {
			continue
		}
		out = append(out, sms.Candidate{Accepted: accepted(msg), CreatedAt: created})
	}
	// The list holds whole messages, so nothing more is read; copies other
	// messages hold are left out here all the same, as the contract says.
	ids := make([]string, len(out))
	for i, c := range out {
		ids[i] = c.ProviderMessageID
	}
	left, err := sms.Untaken(ctx, taken, ids)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(c sms.Candidate) bool { return !slices.Contains(left, c.ProviderMessageID) }), nil
}

// Fetch returns the message with the given SID as Twilio sees it now (its
// current status), or (nil, nil) when Twilio answers 404 with code 20404.
// Errors are *sms.SendError, classified like FindSent's.
func (c *Client) Fetch(ctx context.Context, sid string) (*sms.Accepted, error) {
	if !alphanumeric.MatchString(sid) {
		// The SDK pastes the SID into the path unescaped.
		return nil, &sms.SendError{Provider: Provider, Class: sms.ClassPermanent, Err: errors.New("twilio: invalid message sid")}
	}
	api, rt := c.api(ctx)
	msg, err := api.FetchMessage(sid, nil)
	s := rt.seen()
	if err = usable(msg, err, s); err != nil {
		if code, _ := apiCode(err); s.status == http.StatusNotFound && code == 20404 {
			return nil, nil
		}
		return nil, classify(attempt{idempotent: true, err: err, seen: s, now: c.now()})
	}
	acc := accepted(msg)
	return &acc, nil
}

// ValidateWebhook reports whether signature (the X-Twilio-Signature header)
// is Twilio's signature of a form POST to fullURL (as Twilio called it,
// query included) with the given form parameters, first value per key. It
// uses twilio-go's own validator and the configured auth token.
func (c *Client) ValidateWebhook(fullURL string, form url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	params := make(map[string]string, len(form))
	for k, v := range form {
		params[k] = ""
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	rv := twclient.NewRequestValidator(c.cfg.AuthToken)
	return rv.Validate(fullURL, params, signature)
}

// nextPage reads the PageToken and Page of a list's next_page_uri; both
// are empty on the last page.
func nextPage(uri *string) (token, page string) {
	if uri == nil || *uri == "" {
		return "", ""
	}
	u, err := url.Parse(*uri)
	if err != nil {
		return "", ""
	}
	q := u.Query()
	return q.Get("PageToken"), q.Get("Page")
}

// redirected returns the error of an SDK call that returned err:
// errRedirect for a 3xx, which the SDK takes for a success, else err.
func redirected(err error, s seen) error {
	if s.status >= 300 && s.status < 400 {
		return errRedirect
	}
	return err
}

// usable returns the error of an SDK call that returned msg and err:
// redirected's, or an error for a message without a SID.
func usable(msg *twapi.ApiV2010Message, err error, s seen) error {
	if err := redirected(err, s); err != nil {
		return err
	}
	if msg == nil || str(msg.Sid) == "" {
		return fmt.Errorf("%w: no message sid", ErrUndecodable)
	}
	return nil
}

func accepted(msg *twapi.ApiV2010Message) sms.Accepted {
	segments, _ := strconv.Atoi(str(msg.NumSegments))
	acc := sms.Accepted{ProviderMessageID: str(msg.Sid), Status: str(msg.Status), Segments: segments}
	if msg.ErrorCode != nil && *msg.ErrorCode != 0 {
		acc.ErrorCode = strconv.Itoa(*msg.ErrorCode)
	}
	return acc
}

// parseDate parses Twilio's RFC 2822 dates ("Mon, 02 Jan 2006 15:04:05 +0000").
func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC1123Z, time.RFC1123} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Probe checks that Twilio answers and accepts our credentials, with the
// cheapest authenticated read there is: one page of one message. Errors are
// *sms.SendError, classified like Fetch's.
func (c *Client) Probe(ctx context.Context) error {
	p := &twapi.ListMessageParams{}
	p.SetPageSize(1)
	api, rt := c.api(ctx)
	page, err := api.PageMessage(p, "", "")
	s := rt.seen()
	if err == nil && page == nil {
		err = ErrUndecodable
	}
	if err != nil {
		return classify(attempt{idempotent: true, err: err, seen: s, now: c.now()})
	}
	return nil
}
