package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
)

// Status is a message's status (DESIGN.md: messages.status).
type Status string

// Message statuses. queued → sending → sent → delivered, or a final
// undelivered, failed, blocked_opted_out, expired or cancelled.
const (
	StatusQueued          Status = "queued"
	StatusSending         Status = "sending"
	StatusSent            Status = "sent"
	StatusDelivered       Status = "delivered"
	StatusUndelivered     Status = "undelivered"
	StatusFailed          Status = "failed"
	StatusBlockedOptedOut Status = "blocked_opted_out"
	StatusExpired         Status = "expired"
	StatusCancelled       Status = "cancelled"
)

// rank orders statuses: a report applies only when it ranks higher than the
// message's current status, so duplicates and late reports never move a
// message backwards, and a final status is never replaced.
func rank(s Status) int {
	switch s {
	case StatusQueued:
		return 0
	case StatusSending:
		return 1
	case StatusSent:
		return 2
	default:
		return 3
	}
}

func isFinal(s string) bool { return rank(Status(s)) == 3 }

// Advance reports whether a message in status from may move to status to.
func Advance(from, to Status) bool { return rank(to) > rank(from) }

// emitFinal announces a final status to the app as a switchboard.events row.
// The data holds ids and codes only.
func emitFinal(ctx context.Context, q *db.Queries, tx pgx.Tx, messageID int64, status Status, code *string, reason string) error {
	data := map[string]any{"message_id": messageID, "status": string(status)}
	if code != nil {
		data["error_code"] = *code
	}
	if reason != "" {
		data["reason"] = reason
	}
	return emitEvent(ctx, q, tx, "message."+string(status), messageID, data)
}

// emitEvent records an event of kind about a message for the app; data
// holds ids and codes only.
func emitEvent(ctx context.Context, q *db.Queries, tx pgx.Tx, kind string, messageID int64, data map[string]any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("error encoding event: %w", err)
	}
	if _, err := q.EventEmit(ctx, tx, db.EventEmitParams{
		Kind:    kind,
		Subject: "message/" + strconv.FormatInt(messageID, 10),
		Data:    b,
	}); err != nil {
		return fmt.Errorf("error emitting event: %w", err)
	}
	return nil
}

// Report is one provider status report about a message, already parsed.
type Report struct {
	Provider          string
	ProviderMessageID string
	ProviderStatus    string // the provider's own word
	Status            Status // mapped; empty when the word means nothing to us
	ErrorCode         string
	Reason            string
	OptedOut          bool // the report says the recipient opted out
}

// ApplyReport records a status report in message_events and moves the
// message forward if the report is ahead of it. It returns pgx.ErrNoRows
// when no message has the provider id (the report may have overtaken the
// send's own commit). A report the provider pushed (webhookID set) is always
// recorded; one Switchboard polled for (reconciliation, webhookID nil) is
// recorded only when it changes something: a poll that neither moves the
// message nor reports an opt-out writes nothing, so a message that never
// gets a final status does not grow a row per poll.
func ApplyReport(ctx context.Context, q *db.Queries, tx pgx.Tx, r Report, webhookID *int64) error {
	msg, err := q.MessageGetByProviderID(ctx, tx, db.MessageGetByProviderIDParams{
		Provider: &r.Provider, ProviderMessageID: &r.ProviderMessageID,
	})
	if err != nil {
		return err
	}
	applied := r.Status != "" && Advance(Status(msg.Status), r.Status)
	if webhookID == nil && !applied && !r.OptedOut {
		return nil
	}
	if err := q.MessageEventInsert(ctx, tx, db.MessageEventInsertParams{
		MessageID:      msg.ID,
		Provider:       r.Provider,
		ProviderStatus: r.ProviderStatus,
		Status:         string(r.Status),
		ErrorCode:      nilIfEmpty(r.ErrorCode),
		Applied:        applied,
		WebhookID:      webhookID,
	}); err != nil {
		return fmt.Errorf("error recording status report: %w", err)
	}
	if r.OptedOut {
		if err := q.ConsentSet(ctx, tx, db.ConsentSetParams{PhoneE164: msg.ToE164, OptedOut: true, Source: r.Provider + "_status_" + r.ErrorCode}); err != nil {
			return fmt.Errorf("error recording opt-out: %w", err)
		}
	}
	if !applied {
		return nil
	}
	final := rank(r.Status) == 3
	if _, err := q.MessageAdvance(ctx, tx, db.MessageAdvanceParams{
		ID: msg.ID, Status: string(r.Status), ErrorCode: nilIfEmpty(r.ErrorCode), ErrorReason: nilIfEmpty(r.Reason), Final: final,
	}); err != nil {
		return fmt.Errorf("error advancing message: %w", err)
	}
	if final {
		return emitFinal(ctx, q, tx, msg.ID, r.Status, nilIfEmpty(r.ErrorCode), r.Reason)
	}
	return nil
}
