package telnyx

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// webhookJSON is a Telnyx messaging webhook in the shape Telnyx posts.
func webhookJSON(eventType, status, text string, errorCodes ...string) []byte {
	errs := []any{}
	for _, c := range errorCodes {
		errs = append(errs, map[string]any{"code": c, "title": "Some title", "detail": "Detail about " + testNumber})
	}
	direction, from, to := "outbound", testFrom, testNumber
	if eventType == EventMessageReceived {
		direction, from, to = "inbound", testNumber, testFrom
	}
	b, _ := json.Marshal(map[string]any{
		"data": map[string]any{
			"event_type":  eventType,
			"id":          "b301ed3f-1490-491f-995f-6e64e69674d4",
			"occurred_at": "2026-03-01T12:00:01.123+00:00",
			"payload": map[string]any{
				"record_type": "message", "direction": direction, "id": testMsgID, "type": "SMS",
				"messaging_profile_id": testProfileID,
				"from":                 map[string]any{"phone_number": from, "carrier": "Telnyx", "line_type": "Wireless"},
				"to":                   []any{map[string]any{"phone_number": to, "status": status, "carrier": "T-Mobile USA", "line_type": "Wireless"}},
				"text":                 text, "media": []any{}, "parts": 1, "encoding": "GSM-7",
				"webhook_url": "https://switchboard.example/webhooks/telnyx/status?m=42",
				"errors":      errs,
			},
			"record_type": "event",
		},
		"meta": map[string]any{"attempt": 1, "delivered_to": "https://switchboard.example/webhooks/telnyx/status?m=42"},
	})
	return b
}

func TestParseEvent(t *testing.T) {
	t.Parallel()

	t.Run("Finalized", func(t *testing.T) {
		t.Parallel()
		ev, err := ParseEvent(webhookJSON(EventMessageFinalized, "delivery_failed", "Reminder", "40001", "40008"))
		require.NoError(t, err)
		require.Equal(t, Event{
			ID:         "b301ed3f-1490-491f-995f-6e64e69674d4",
			Type:       EventMessageFinalized,
			OccurredAt: time.Date(2026, 3, 1, 12, 0, 1, 123_000_000, time.UTC),
			MessageID:  testMsgID,
			Direction:  "outbound",
			Status:     "delivery_failed",
			ErrorCodes: []string{"40001", "40008"},
			From:       testFrom,
			To:         testNumber,
		}, ev.withUTC(), "the outbound text is not kept")
	})

	t.Run("Sent", func(t *testing.T) {
		t.Parallel()
		ev, err := ParseEvent(webhookJSON(EventMessageSent, "sent", "Reminder"))
		require.NoError(t, err)
		require.Equal(t, EventMessageSent, ev.Type)
		require.Equal(t, "sent", ev.Status)
		require.Empty(t, ev.ErrorCodes)
		require.Empty(t, ev.Text)
	})

	t.Run("Received", func(t *testing.T) {
		t.Parallel()
		ev, err := ParseEvent(webhookJSON(EventMessageReceived, "webhook_delivered", "STOP"))
		require.NoError(t, err)
		require.Equal(t, EventMessageReceived, ev.Type)
		require.Equal(t, "inbound", ev.Direction)
		require.Equal(t, testNumber, ev.From)
		require.Equal(t, testFrom, ev.To)
		require.Equal(t, "STOP", ev.Text)
	})

	t.Run("NumericErrorCodes", func(t *testing.T) {
		t.Parallel()
		raw := strings.Replace(string(webhookJSON(EventMessageFinalized, "delivery_failed", "", "40006")), `"code":"40006"`, `"code":40006`, 1)
		ev, err := ParseEvent([]byte(raw))
		require.NoError(t, err)
		require.Equal(t, []string{"40006"}, ev.ErrorCodes)
	})

	t.Run("KeepsPHIOutOfItsText", func(t *testing.T) {
		t.Parallel()
		ev, err := ParseEvent(webhookJSON(EventMessageReceived, "webhook_delivered", "my secret reply"))
		require.NoError(t, err)
		var logged strings.Builder
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("event", slog.Any("event", ev))
		for _, s := range []string{ev.String(), fmt.Sprint(ev), fmt.Sprintf("%+v", ev), fmt.Sprintf("%#v", ev), logged.String()} {
			require.NotContains(t, s, strings.TrimPrefix(testNumber, "+"))
			require.NotContains(t, s, strings.TrimPrefix(testFrom, "+"))
			require.NotContains(t, s, "secret")
			require.Contains(t, s, testMsgID)
		}
	})

	malformed := []struct {
		name string
		raw  string
	}{
		{name: "NotJSON", raw: "<html>" + testNumber},
		{name: "NoData", raw: `{"meta":{}}`},
		{name: "NoID", raw: `{"data":{"event_type":"message.sent","payload":{"id":"m"}}}`},
		{name: "NoType", raw: `{"data":{"id":"e","payload":{"id":"m"}}}`},
		{name: "NotAnEvent", raw: `{"data":{"id":"e","event_type":"message.sent","record_type":"message","payload":{"id":"m"}}}`},
		{name: "NoPayload", raw: `{"data":{"id":"e","event_type":"message.sent"}}`},
		{name: "NoMessageID", raw: `{"data":{"id":"e","event_type":"message.sent","payload":{}}}`},
		{name: "BadOccurredAt", raw: `{"data":{"id":"e","event_type":"message.sent","occurred_at":"yesterday","payload":{"id":"m"}}}`},
		{name: "WrongTypes", raw: `{"data":{"id":7,"event_type":"message.sent","payload":{"id":"m"}}}`},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEvent([]byte(tt.raw))
			require.Error(t, err)
			require.NotContains(t, err.Error(), strings.TrimPrefix(testNumber, "+"))
		})
	}
}

// withUTC normalises OccurredAt's location for comparison.
func (e Event) withUTC() Event {
	e.OccurredAt = e.OccurredAt.UTC()
	return e
}

func TestParseReport(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		eventType string
		status    string
		codes     []string
		want      sms.Report
	}{
		{name: "Queued", eventType: EventMessageSent, status: "queued", want: sms.Report{ProviderStatus: "queued", Status: sms.StatusSending}},
		{name: "Sending", eventType: EventMessageSent, status: "sending", want: sms.Report{ProviderStatus: "sending", Status: sms.StatusSending}},
		{name: "Sent", eventType: EventMessageSent, status: "sent", want: sms.Report{ProviderStatus: "sent", Status: sms.StatusSent}},
		{name: "Delivered", eventType: EventMessageFinalized, status: "delivered", want: sms.Report{ProviderStatus: "delivered", Status: sms.StatusDelivered}},
		{name: "DeliveryUnconfirmed", eventType: EventMessageFinalized, status: "delivery_unconfirmed", want: sms.Report{ProviderStatus: "delivery_unconfirmed", Status: sms.StatusSent}},
		{
			name: "DeliveryFailedLandline", eventType: EventMessageFinalized, status: "delivery_failed", codes: []string{"40001"},
			want: sms.Report{ProviderStatus: "delivery_failed", Status: sms.StatusUndelivered, ErrorCode: "40001", Reason: sms.ReasonInvalidNumber},
		},
		{
			name: "DeliveryFailedUnavailable", eventType: EventMessageFinalized, status: "delivery_failed", codes: []string{"40006"},
			want: sms.Report{ProviderStatus: "delivery_failed", Status: sms.StatusUndelivered, ErrorCode: "40006", Reason: sms.ReasonUnreachable},
		},
		{
			name: "DeliveryFailedSpam", eventType: EventMessageFinalized, status: "delivery_failed", codes: []string{"40003"},
			want: sms.Report{ProviderStatus: "delivery_failed", Status: sms.StatusUndelivered, ErrorCode: "40003"},
		},
		{
			name: "DeliveryFailedNoCode", eventType: EventMessageFinalized, status: "delivery_failed",
			want: sms.Report{ProviderStatus: "delivery_failed", Status: sms.StatusUndelivered},
		},
		{
			name: "ReasonFromALaterCode", eventType: EventMessageFinalized, status: "delivery_failed", codes: []string{"49999", "40008"},
			want: sms.Report{ProviderStatus: "delivery_failed", Status: sms.StatusUndelivered, ErrorCode: "40008", Reason: sms.ReasonUnreachable},
		},
		{
			name: "SendingFailed", eventType: EventMessageFinalized, status: "sending_failed", codes: []string{"40014"},
			want: sms.Report{ProviderStatus: "sending_failed", Status: sms.StatusFailed, ErrorCode: "40014", Reason: sms.ReasonExpired},
		},
		{
			name: "Expired", eventType: EventMessageFinalized, status: "expired", codes: []string{"40005"},
			want: sms.Report{ProviderStatus: "expired", Status: sms.StatusUndelivered, ErrorCode: "40005", Reason: sms.ReasonExpired},
		},
		{
			name: "ExpiredNoCode", eventType: EventMessageFinalized, status: "expired",
			want: sms.Report{ProviderStatus: "expired", Status: sms.StatusUndelivered, Reason: sms.ReasonExpired},
		},
		{
			name: "BlockedByStop", eventType: EventMessageFinalized, status: "sending_failed", codes: []string{"40300"},
			want: sms.Report{ProviderStatus: "sending_failed", Status: sms.StatusBlockedOptedOut, ErrorCode: "40300", Reason: sms.ReasonOptedOut, OptedOut: true},
		},
		{
			name: "BlockedByStopUndelivered", eventType: EventMessageFinalized, status: "delivery_failed", codes: []string{"40300"},
			want: sms.Report{ProviderStatus: "delivery_failed", Status: sms.StatusBlockedOptedOut, ErrorCode: "40300", Reason: sms.ReasonOptedOut, OptedOut: true},
		},
		{
			name: "CodeOnDeliveredIsKeptWithoutReason", eventType: EventMessageFinalized, status: "delivered", codes: []string{"40300"},
			want: sms.Report{ProviderStatus: "delivered", Status: sms.StatusDelivered, ErrorCode: "40300"},
		},
		{name: "UnknownWord", eventType: EventMessageFinalized, status: "webhook_delivered", want: sms.Report{ProviderStatus: "webhook_delivered"}},
		{name: "TypeFromTheBody", eventType: "", status: "sent", want: sms.Report{ProviderStatus: "sent", Status: sms.StatusSent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bodyType := tt.eventType
			if bodyType == "" {
				bodyType = EventMessageSent
			}
			raw := webhookJSON(bodyType, tt.status, "Reminder", tt.codes...)

			r, err := ParseReport(tt.eventType, raw)
			require.NoError(t, err)
			want := tt.want
			want.Provider, want.ProviderMessageID = Provider, testMsgID
			require.Equal(t, want, r)

			c := &Client{}
			r2, err := c.ParseReport(tt.eventType, raw)
			require.NoError(t, err)
			require.Equal(t, r, r2)
		})
	}

	t.Run("InboundIsNotAReport", func(t *testing.T) {
		t.Parallel()
		_, err := ParseReport(EventMessageReceived, webhookJSON(EventMessageReceived, "webhook_delivered", "STOP"))
		require.ErrorIs(t, err, ErrNotReport)
		require.NotContains(t, err.Error(), "STOP")
	})

	t.Run("UnknownEventIsNotAReport", func(t *testing.T) {
		t.Parallel()
		_, err := ParseReport("", webhookJSON("message.link_click", "sent", ""))
		require.ErrorIs(t, err, ErrNotReport)
	})

	t.Run("TypeMismatch", func(t *testing.T) {
		t.Parallel()
		_, err := ParseReport(EventMessageFinalized, webhookJSON(EventMessageSent, "sent", ""))
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrNotReport)
	})

	t.Run("NoStatus", func(t *testing.T) {
		t.Parallel()
		_, err := ParseReport(EventMessageSent, []byte(`{"data":{"id":"e","event_type":"message.sent","payload":{"id":"m","to":[]}}}`))
		require.Error(t, err)
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		_, err := ParseReport(EventMessageSent, []byte("not json"))
		require.Error(t, err)
	})
}

func TestParseInbound(t *testing.T) {
	t.Parallel()

	ev, err := ParseInbound(webhookJSON(EventMessageReceived, "webhook_delivered", "HELP"))
	require.NoError(t, err)
	require.Equal(t, "HELP", ev.Text)
	require.Equal(t, testNumber, ev.From)
	require.Equal(t, testMsgID, ev.MessageID)

	_, err = ParseInbound(webhookJSON(EventMessageFinalized, "delivered", ""))
	require.Error(t, err)

	_, err = ParseInbound([]byte(`{"data":{"id":"e","event_type":"message.received","payload":{"id":"m","to":[{"phone_number":"+15005550006"}]}}}`))
	require.Error(t, err, "no sender")

	_, err = ParseInbound([]byte("{"))
	require.Error(t, err)
}
