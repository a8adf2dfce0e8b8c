package twiliosandbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Run moves accepted messages through their statuses and posts their status
// callbacks until ctx ends. It returns nil once ctx has ended and every
// callback in flight has stopped. Messages accepted before Run starts are
// picked up when it does.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		s.mu.Unlock()
		for _, m := range batch {
			wg.Go(func() { s.lifecycle(ctx, m) })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
	}
}

// lifecycle moves one message to sent and then to its final status, one
// step every CallbackDelay, posting each step to its status callback.
func (s *Server) lifecycle(ctx context.Context, m *message) {
	for _, final := range []bool{false, true} {
		t := time.NewTimer(s.cfg.CallbackDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		params, callback := s.advance(m, final)
		if callback != "" {
			s.post(ctx, m.SID, callback, params)
		}
	}
}

// advance applies a message's next status and returns the callback's
// parameters and URL ("" when the message has no callback).
func (s *Server) advance(m *message, final bool) (url.Values, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	m.UpdatedAt = now.Truncate(time.Second)
	if m.From == "" {
		m.From = poolSender // the Messaging Service picked a sender
	}
	if !final {
		m.Status = "sent"
		m.SentAt = m.UpdatedAt
	} else {
		m.Status, m.ErrorCode = m.finalState, m.finalCode
	}

	p := url.Values{
		"MessageSid":    {m.SID},
		"SmsSid":        {m.SID},
		"MessageStatus": {m.Status},
		"SmsStatus":     {m.Status},
		"AccountSid":    {s.cfg.AccountSID},
		"From":          {m.From},
		"To":            {m.To},
		"ApiVersion":    {apiVersion},
	}
	if m.MessagingServiceSID != "" {
		p.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if m.ErrorCode != 0 {
		p.Set("ErrorCode", strconv.Itoa(m.ErrorCode))
	}
	if m.Status == "delivered" || m.Status == "undelivered" {
		p.Set("RawDlrDoneDate", now.Format("0601021504"))
	}
	return p, m.StatusCallback
}

// post delivers one status callback, signed, once (Twilio's default: no
// retry). Failures are logged with the message SID only.
func (s *Server) post(ctx context.Context, sid, callback string, params url.Values) {
	// A fragment carries Twilio's connection overrides; it is not sent.
	target, _, _ := strings.Cut(callback, "#")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(params.Encode()))
	if err != nil {
		s.log.WarnContext(ctx, "twilio sandbox could not build a status callback", slog.String("message_sid", sid))
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("X-Twilio-Signature", Sign(s.cfg.AuthToken, target, params))
	req.Header.Set("I-Twilio-Idempotency-Token", newSID(""))

	resp, err := s.callback.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "twilio sandbox status callback failed", slog.String("message_sid", sid))
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		s.log.WarnContext(ctx, "twilio sandbox status callback refused",
			slog.String("message_sid", sid), slog.Int("http_status", resp.StatusCode))
		return
	}
	s.log.DebugContext(ctx, "twilio sandbox posted a status callback",
		slog.String("message_sid", sid), slog.String("message_status", params.Get("MessageStatus")))
}

// Sign returns Twilio's X-Twilio-Signature for a form POST to fullURL:
// base64(HMAC-SHA1(authToken, fullURL + name+value of every parameter,
// sorted by name)). fullURL is the URL exactly as called, query included.
func Sign(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range params[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
