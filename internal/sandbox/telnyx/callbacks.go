package telnyxsandbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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

// Webhook headers.
const (
	headerSignature = "Telnyx-Signature-Ed25519"
	headerTimestamp = "Telnyx-Timestamp"
)

// deliveryAttempts is how often a webhook is posted before the sandbox
// gives up: once, and up to three retries, as Telnyx retries.
const deliveryAttempts = 4

// Keywords that change a recipient's block rule (Telnyx's defaults;
// whole-body, case-insensitive).
var (
	optOutKeywords = []string{"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
	optInKeywords  = []string{"START", "UNSTOP"}
)

// Run moves accepted messages through their statuses and posts their
// webhooks until ctx ends. It returns nil once ctx has ended and every
// delivery in flight has stopped. Messages accepted before Run starts are
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
// step every CallbackDelay, posting message.sent and message.finalized to
// its webhook URL.
func (s *Server) lifecycle(ctx context.Context, m *message) {
	for _, final := range []bool{false, true} {
		if !sleep(ctx, s.cfg.CallbackDelay) {
			return
		}
		body, webhookURL := s.advance(m, final)
		if webhookURL != "" {
			s.deliver(ctx, m.ID, webhookURL, body)
		}
	}
}

// advance applies a message's next status and returns the event's body
// and the URL to post it to ("" when the message has none).
func (s *Server) advance(m *message, final bool) ([]byte, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	m.UpdatedAt = now
	eventType := "message.sent"
	if !final {
		m.Status, m.SentAt = "sent", now
	} else {
		eventType = "message.finalized"
		m.Status, m.ErrorCode = m.finalState, m.finalCode
	}
	// The sandbox profile has no webhook URL of its own: a message without
	// webhook_url posts nothing, use_profile_webhooks or not.
	return eventBody(eventType, now, resourceOf(m), m.WebhookURL), m.WebhookURL
}

// event is a Telnyx webhook envelope.
type event struct {
	Data eventData `json:"data"`
	Meta eventMeta `json:"meta"`
}

type eventData struct {
	EventType  string   `json:"event_type"`
	ID         string   `json:"id"`
	OccurredAt string   `json:"occurred_at"`
	Payload    resource `json:"payload"`
	RecordType string   `json:"record_type"`
}

type eventMeta struct {
	Attempt     int    `json:"attempt"`
	DeliveredTo string `json:"delivered_to"`
}

// eventBody encodes one event with a fresh data.id; meta.attempt is 1 and
// deliver rewrites it for retries.
func eventBody(eventType string, at time.Time, payload resource, webhookURL string) []byte {
	b, _ := json.Marshal(event{
		Data: eventData{EventType: eventType, ID: newUUID(), OccurredAt: timestamp(at), Payload: payload, RecordType: "event"},
		Meta: eventMeta{Attempt: 1, DeliveredTo: webhookURL},
	})
	return b
}

// withAttempt returns body with meta.attempt set to n (same data.id).
func withAttempt(body []byte, n int) []byte {
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		return body
	}
	ev.Meta.Attempt = n
	b, err := json.Marshal(ev)
	if err != nil {
		return body
	}
	return b
}

// deliver posts one event, signed, retrying non-2xx answers and failures
// up to deliveryAttempts in all, CallbackDelay apart. Failures are logged
// with the message id only.
func (s *Server) deliver(ctx context.Context, messageID, webhookURL string, body []byte) {
	for n := 1; n <= deliveryAttempts; n++ {
		if n > 1 && !sleep(ctx, s.cfg.CallbackDelay) {
			return
		}
		status, err := s.post(ctx, webhookURL, withAttempt(body, n))
		switch {
		case err == nil && status < 300:
			return
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.WarnContext(ctx, "telnyx sandbox webhook failed", slog.String("vendor_message_id", messageID), slog.Int("attempt", n))
		default:
			s.log.WarnContext(ctx, "telnyx sandbox webhook refused",
				slog.String("vendor_message_id", messageID), slog.Int("attempt", n), slog.Int("http_status", status))
		}
	}
}

// post sends one signed webhook and returns the answer's status.
func (s *Server) post(ctx context.Context, webhookURL string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("telnyx sandbox: bad webhook url")
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "telnyx-webhooks")
	req.Header.Set(headerTimestamp, ts)
	req.Header.Set(headerSignature, Sign(s.cfg.PrivateKey, ts, body))
	resp, err := s.callback.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the caller's
		}
		return 0, fmt.Errorf("telnyx sandbox: webhook post failed: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// Sign returns the telnyx-signature-ed25519 header of a webhook: base64 of
// the Ed25519 signature of timestamp + "|" + body with key.
func Sign(key ed25519.PrivateKey, timestamp string, body []byte) string {
	msg := make([]byte, 0, len(timestamp)+1+len(body))
	msg = append(append(append(msg, timestamp...), '|'), body...)
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
}

// SendInbound posts a signed message.received webhook to webhookURL, as if
// from (a patient) texted text to to (our number), once, and returns an
// error when the post fails or is not answered 2xx. Like Telnyx, an opt-out
// keyword (STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT: the
// whole body, any case) blocks later sends to from with 40300 and an opt-in
// keyword (START, UNSTOP) lifts the block, even when the post fails.
func (s *Server) SendInbound(ctx context.Context, webhookURL, from, to, text string) error {
	now := time.Now().UTC()
	m := &message{Message: Message{
		ID: newUUID(), Direction: "inbound", To: to, From: from, Text: text, Type: "SMS",
		MessagingProfileID: ProfileID, Parts: segments(text), Status: "webhook_delivered",
		CreatedAt: now, UpdatedAt: now,
	}}
	keyword := strings.ToUpper(strings.Join(strings.Fields(text), " "))
	s.mu.Lock()
	m.seq = len(s.msgs)
	s.msgs = append(s.msgs, m)
	s.byID[m.ID] = m
	switch {
	case slices.Contains(optOutKeywords, keyword):
		s.blocked[from] = true
	case slices.Contains(optInKeywords, keyword):
		delete(s.blocked, from)
	}
	payload := resourceOf(m)
	s.mu.Unlock()
	payload.Cost = nil

	status, err := s.post(ctx, webhookURL, eventBody("message.received", now, payload, webhookURL))
	if err != nil {
		return err
	}
	if status >= 300 {
		return fmt.Errorf("telnyx sandbox: inbound webhook answered %d", status)
	}
	return nil
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
