package telnyx

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// Messaging event types (data.event_type).
const (
	// EventMessageSent: the message was handed to the carrier.
	EventMessageSent = "message.sent"
	// EventMessageFinalized: the message reached a terminal status; the
	// payload carries the final to[].status and errors.
	EventMessageFinalized = "message.finalized"
	// EventMessageReceived: an inbound message (a reply, STOP, HELP…).
	EventMessageReceived = "message.received"
)

// ErrNotReport is wrapped by ParseReport's error for events that are not
// status reports: message.received (parse it with ParseInbound) and event
// types this adapter does not know.
var ErrNotReport = errors.New("telnyx event is not a status report")

// Event is one Telnyx messaging webhook, parsed. From, To and Text are PHI:
// String and LogValue leave them out.
type Event struct {
	// ID is data.id, unique per event: dedupe on it.
	ID string
	// Type is data.event_type: EventMessageSent, EventMessageFinalized,
	// EventMessageReceived or another Telnyx event type.
	Type string
	// OccurredAt is data.occurred_at: order events by it.
	OccurredAt time.Time
	// MessageID is the message's id (data.payload.id).
	MessageID string
	// Direction is "outbound" or "inbound".
	Direction string
	// Status is the first recipient's status (data.payload.to[0].status).
	Status string
	// ErrorCodes are the codes of data.payload.errors, in order.
	ErrorCodes []string
	// From and To are the sender and the first recipient.
	From, To string
	// Text is the message's text, for message.received only.
	Text string
}

// String describes the event without its numbers and text.
func (e Event) String() string {
	return fmt.Sprintf("telnyx.Event{ID:%q Type:%q MessageID:%q Status:%q ErrorCodes:%q}", e.ID, e.Type, e.MessageID, e.Status, e.ErrorCodes)
}

// GoString is String, so that %#v keeps the PHI out too.
func (e Event) GoString() string { return e.String() }

// LogValue logs the event without its numbers and text.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("event_id", e.ID),
		slog.String("event_type", e.Type),
		slog.String("vendor_message_id", e.MessageID),
		slog.String("vendor_status", e.Status),
		slog.Any("vendor_error_codes", e.ErrorCodes),
	)
}

// envelope is a Telnyx webhook body.
type envelope struct {
	Data *struct {
		EventType  string   `json:"event_type"`
		ID         string   `json:"id"`
		OccurredAt string   `json:"occurred_at"`
		RecordType string   `json:"record_type"`
		Payload    *message `json:"payload"`
	} `json:"data"`
}

// ParseEvent parses a Telnyx messaging webhook body,
// {"data":{"event_type","id","occurred_at","payload":{message},"record_type":"event"},"meta":{…}}.
// It returns an error when the body is not JSON, lacks data, data.id,
// data.event_type or the payload's id, has a record_type other than
// "event", or an occurred_at that is not RFC 3339. Error texts never quote
// the body.
func ParseEvent(raw []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, fmt.Errorf("telnyx event is not json: %w", jsonError(err))
	}
	d := env.Data
	switch {
	case d == nil:
		return Event{}, errors.New("telnyx event lacks data")
	case d.ID == "":
		return Event{}, errors.New("telnyx event lacks data.id")
	case d.EventType == "":
		return Event{}, errors.New("telnyx event lacks data.event_type")
	case d.RecordType != "" && d.RecordType != "event":
		return Event{}, fmt.Errorf("telnyx event has record_type %q", d.RecordType)
	case d.Payload == nil || d.Payload.ID == "":
		return Event{}, errors.New("telnyx event lacks data.payload.id")
	}
	ev := Event{ID: d.ID, Type: d.EventType, MessageID: d.Payload.ID, Direction: d.Payload.Direction, From: d.Payload.From.PhoneNumber}
	if d.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, d.OccurredAt)
		if err != nil {
			return Event{}, errors.New("telnyx event has a malformed occurred_at")
		}
		ev.OccurredAt = t
	}
	if len(d.Payload.To) > 0 {
		ev.To, ev.Status = d.Payload.To[0].PhoneNumber, d.Payload.To[0].Status
	}
	for _, e := range d.Payload.Errors {
		if e.Code != "" {
			ev.ErrorCodes = append(ev.ErrorCodes, string(e.Code))
		}
	}
	if ev.Type == EventMessageReceived {
		ev.Text = d.Payload.Text
	}
	return ev, nil
}

// ParseInbound parses a message.received webhook: an inbound message, with
// From, To and Text set. It returns ParseEvent's errors, and an error when
// the event is of another type or has no sender.
func ParseInbound(raw []byte) (Event, error) {
	ev, err := ParseEvent(raw)
	if err != nil {
		return Event{}, err
	}
	if ev.Type != EventMessageReceived {
		return Event{}, fmt.Errorf("telnyx event type %q is not an inbound message", ev.Type)
	}
	if ev.From == "" {
		return Event{}, errors.New("telnyx inbound message lacks a sender")
	}
	return ev, nil
}

// statusMap maps Telnyx's to[].status words to Switchboard's. Words
// missing here (received, receiving, webhook_delivered: inbound) are
// recorded but move nothing.
//
//   - expired is a delivery failure (Telnyx: "the status of these messages
//     may be delivery_failed or expired"; a message that outlives its queue
//     is sending_failed), so it is undelivered with reason expired, not
//     Switchboard's own expired, which means "not sent by not_after".
//   - delivery_unconfirmed is terminal at Telnyx, but all it says is that
//     the carrier has it: sent, like Twilio's sent without a receipt.
var statusMap = map[string]sms.Status{
	"queued":               sms.StatusSending,
	"sending":              sms.StatusSending,
	"sent":                 sms.StatusSent,
	"delivered":            sms.StatusDelivered,
	"delivery_unconfirmed": sms.StatusSent,
	"delivery_failed":      sms.StatusUndelivered,
	"expired":              sms.StatusUndelivered,
	"sending_failed":       sms.StatusFailed,
}

// codeReasons gives the reason of a failed message by its delivery error
// code (developers.telnyx.com messaging error codes).
var codeReasons = map[string]string{
	"40001": sms.ReasonInvalidNumber, // not routable (landline)
	"40012": sms.ReasonInvalidNumber, // invalid destination number
	"10002": sms.ReasonInvalidNumber, // invalid phone number
	"10016": sms.ReasonInvalidNumber, // not +E.164
	"40006": sms.ReasonUnreachable,   // recipient server unavailable
	"40008": sms.ReasonUnreachable,   // undeliverable
	"40005": sms.ReasonExpired,       // expired during transmission
	"40014": sms.ReasonExpired,       // expired in queue
	"40300": sms.ReasonOptedOut,      // blocked due to STOP
}

// ParseReport implements sms.ReportParser for stored Telnyx webhooks
// (already verified by the api). See the package function.
func (c *Client) ParseReport(eventType string, raw []byte) (sms.Report, error) {
	return ParseReport(eventType, raw)
}

// ParseReport turns a message.sent or message.finalized webhook into a
// status report. eventType is the type the api stored (data.event_type);
// when not empty it must match the body's. Statuses map by statusMap; a
// failed or undelivered message gets a reason from its first error code,
// and 40300 (blocked due to STOP) ends it blocked_opted_out and marks the
// recipient opted out.
//
// It returns an error wrapping ErrNotReport for message.received and
// unknown event types, ParseEvent's errors, and an error when the types
// disagree or the payload has no status.
func ParseReport(eventType string, raw []byte) (sms.Report, error) {
	ev, err := ParseEvent(raw)
	if err != nil {
		return sms.Report{}, err
	}
	if eventType != "" && eventType != ev.Type {
		return sms.Report{}, fmt.Errorf("telnyx event type %q stored as %q", ev.Type, eventType)
	}
	if ev.Type != EventMessageSent && ev.Type != EventMessageFinalized {
		return sms.Report{}, fmt.Errorf("%w: %q", ErrNotReport, ev.Type)
	}
	if ev.Status == "" {
		return sms.Report{}, errors.New("telnyx status event lacks data.payload.to[0].status")
	}
	return report(ev.MessageID, ev.Status, ev.ErrorCodes), nil
}

// report maps a message's status word and error codes to a report.
func report(id, status string, codes []string) sms.Report {
	r := sms.Report{
		Provider:          Provider,
		ProviderMessageID: id,
		ProviderStatus:    status,
		Status:            statusMap[status],
	}
	if len(codes) > 0 {
		r.ErrorCode = codes[0]
	}
	if r.Status == sms.StatusFailed || r.Status == sms.StatusUndelivered {
		for _, c := range codes {
			if reason, ok := codeReasons[c]; ok {
				r.ErrorCode, r.Reason = c, reason
				break
			}
		}
		if r.Reason == "" && status == "expired" {
			r.Reason = sms.ReasonExpired
		}
		if r.Reason == sms.ReasonOptedOut {
			r.Status, r.OptedOut = sms.StatusBlockedOptedOut, true
		}
	}
	return r
}
