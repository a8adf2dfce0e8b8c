package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// Inbound is one SMS a patient sent to one of our numbers.
type Inbound struct {
	Provider          string
	ProviderMessageID string
	From, To          string
	Body              string
}

// InboundParser turns one stored provider webhook into an inbound SMS.
// Provider adapters implement it beside ReportParser.
type InboundParser interface {
	ParseInbound(eventType string, raw []byte) (Inbound, error)
}

// InboundConfig is how Switchboard answers patients.
type InboundConfig struct {
	// HelpText answers HELP and INFO, even from an opted-out number.
	HelpText string `env:"SMS_HELP_TEXT, default=Switchboard Health reminders. Reply STOP to opt out or START to opt back in. For help call your care team. Msg&data rates may apply."`
	// AutoReplyText answers any other reply once per AutoReplyWindow; empty
	// disables it.
	AutoReplyText   string        `env:"SMS_AUTO_REPLY_TEXT, default=This number is not monitored. For a medical emergency call 911. To reach your care team call the clinic."`
	AutoReplyWindow time.Duration `env:"SMS_AUTO_REPLY_WINDOW, default=24h"`
}

// Keyword families (whole body, case-insensitive, spaces ignored: "Stop
// please" is no keyword, " stop " and "STOP ALL" are).
const (
	KeywordStop  = "STOP"
	KeywordStart = "START"
	KeywordHelp  = "HELP"
)

var keywords = map[string]string{
	"STOP": KeywordStop, "STOPALL": KeywordStop, "UNSUBSCRIBE": KeywordStop, "CANCEL": KeywordStop,
	"END": KeywordStop, "QUIT": KeywordStop, "REVOKE": KeywordStop, "OPTOUT": KeywordStop,
	"START": KeywordStart, "YES": KeywordStart, "UNSTOP": KeywordStart,
	"HELP": KeywordHelp, "INFO": KeywordHelp,
}

// Keyword returns the keyword family of an inbound body, or "".
func Keyword(body string) string {
	var b strings.Builder
	for _, r := range body {
		switch {
		case unicode.IsSpace(r):
		case unicode.IsPunct(r) && (r == '.' || r == '!'):
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return keywords[b.String()]
}

// applyInbound handles one inbound SMS inside the webhook's transaction:
// STOP-family opts the number out of every provider at once, START-family
// opts it back in, HELP-family is answered (also when opted out), anything
// else is stored, announced to the app and answered once per window.
func (w *WebhookWorker) applyInbound(ctx context.Context, tx pgx.Tx, hookID int64, in Inbound) error {
	kw := Keyword(in.Body)
	switch kw {
	case KeywordStop, KeywordStart:
		optedOut := kw == KeywordStop
		if err := w.q.ConsentSet(ctx, tx, db.ConsentSetParams{
			PhoneE164: in.From, OptedOut: optedOut, Source: in.Provider + "_inbound_" + strings.ToLower(kw),
		}); err != nil {
			return fmt.Errorf("error recording consent: %w", err)
		}
		return w.emit(ctx, tx, "sms.consent_changed", "inbound_webhook/"+strconv.FormatInt(hookID, 10),
			map[string]any{"opted_out": optedOut, "provider": in.Provider, "webhook_id": hookID})
	case KeywordHelp:
		if w.inbound.HelpText == "" {
			return nil
		}
		return w.reply(ctx, tx, in, "help", w.inbound.HelpText)
	}

	msg, err := w.q.InboundMessageInsert(ctx, tx, db.InboundMessageInsertParams{
		Provider: in.Provider, ProviderMessageID: in.ProviderMessageID, FromE164: in.From, ToE164: in.To,
		Body: &in.Body, WebhookID: &hookID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the same SMS arrived through another webhook row
	}
	if err != nil {
		return fmt.Errorf("error storing inbound message: %w", err)
	}
	if err := w.emit(ctx, tx, "sms.inbound", "inbound_message/"+strconv.FormatInt(msg, 10),
		map[string]any{"inbound_message_id": msg, "provider": in.Provider}); err != nil {
		return err
	}
	if w.inbound.AutoReplyText == "" {
		return nil
	}
	due, err := w.q.AutoReplyClaim(ctx, tx, db.AutoReplyClaimParams{PhoneE164: in.From, Before: time.Now().Add(-w.inbound.AutoReplyWindow)})
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !due) {
		return nil // answered within the window already
	}
	if err != nil {
		return fmt.Errorf("error recording auto-reply: %w", err)
	}
	return w.reply(ctx, tx, in, "auto_reply", w.inbound.AutoReplyText)
}

// reply enqueues an answer through the outbox, idempotent per inbound SMS.
func (w *WebhookWorker) reply(ctx context.Context, tx pgx.Tx, in Inbound, purpose, text string) error {
	id, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{
		IdempotencyKey: purpose + ":" + in.Provider + ":" + in.ProviderMessageID,
		To:             in.From,
		Body:           text,
	})
	if err != nil {
		return fmt.Errorf("error enqueueing %s reply: %w", purpose, err)
	}
	if err := w.q.MessageSetPurpose(ctx, tx, db.MessageSetPurposeParams{ID: id, Purpose: purpose}); err != nil {
		return fmt.Errorf("error marking %s reply: %w", purpose, err)
	}
	return nil
}

func (w *WebhookWorker) emit(ctx context.Context, tx pgx.Tx, kind, subject string, data map[string]any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("error encoding event: %w", err)
	}
	if _, err := w.q.EventEmit(ctx, tx, db.EventEmitParams{Kind: kind, Subject: subject, Data: b}); err != nil {
		return fmt.Errorf("error emitting event: %w", err)
	}
	return nil
}
