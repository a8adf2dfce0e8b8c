package telnyx

import (
	"context"
	"fmt"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// FetchReport implements sms.ReportFetcher: the message's current status
// from GET /v2/messages/{id}, mapped like a status webhook, or (nil, nil)
// when Telnyx does not know the id. Errors are Fetch's.
func (c *Client) FetchReport(ctx context.Context, id string) (*sms.Report, error) {
	msg, err := c.fetch(ctx, id)
	if err != nil || msg == nil {
		return nil, err
	}
	codes := make([]string, 0, len(msg.Errors))
	for _, e := range msg.Errors {
		codes = append(codes, string(e.Code))
	}
	r := report(msg.ID, msg.status(), codes)
	return &r, nil
}

// ParseInbound implements sms.InboundParser for stored message.received
// events (verified by the api).
func (c *Client) ParseInbound(eventType string, raw []byte) (sms.Inbound, error) {
	if eventType != EventMessageReceived {
		return sms.Inbound{}, fmt.Errorf("telnyx event type %q is not an inbound message", eventType)
	}
	ev, err := ParseInbound(raw)
	if err != nil {
		return sms.Inbound{}, err
	}
	return sms.Inbound{Provider: Provider, ProviderMessageID: ev.MessageID, From: ev.From, To: ev.To, Body: ev.Text}, nil
}
