package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// EventStatus is the inbox event type of a Twilio status callback.
const EventStatus = "message.status"

// statusMap maps Twilio's status words to Switchboard's. Words missing here
// (receiving, received: inbound only) are recorded but move nothing.
var statusMap = map[string]sms.Status{
	"accepted":            sms.StatusSending,
	"scheduled":           sms.StatusSending,
	"queued":              sms.StatusSending,
	"sending":             sms.StatusSending,
	"sent":                sms.StatusSent,
	"delivered":           sms.StatusDelivered,
	"read":                sms.StatusDelivered,
	"partially_delivered": sms.StatusDelivered,
	"undelivered":         sms.StatusUndelivered,
	"failed":              sms.StatusFailed,
	"canceled":            sms.StatusCancelled,
}

// ParseReport implements sms.ReportParser for stored Twilio status callbacks
// (form-encoded, already verified by the api). Delivery error codes that mean
// the recipient opted out (21610) end the message blocked_opted_out and mark
// the number opted out.
func (c *Client) ParseReport(eventType string, raw []byte) (sms.Report, error) {
	return ParseReport(eventType, raw)
}

// ParseReport is Client.ParseReport without a client.
func ParseReport(eventType string, raw []byte) (sms.Report, error) {
	if eventType != EventStatus {
		return sms.Report{}, fmt.Errorf("twilio event type %q is not a status callback", eventType)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return sms.Report{}, errors.New("twilio status callback is not form-encoded")
	}
	sid := first(form, "MessageSid", "SmsSid")
	word := first(form, "MessageStatus", "SmsStatus")
	if sid == "" || word == "" {
		return sms.Report{}, errors.New("twilio status callback lacks MessageSid or MessageStatus")
	}
	return report(sid, word, form.Get("ErrorCode")), nil
}

// report maps a Twilio status word and error code to a report.
func report(sid, word, code string) sms.Report {
	r := sms.Report{
		Provider:          Provider,
		ProviderMessageID: sid,
		ProviderStatus:    word,
		Status:            statusMap[word],
		ErrorCode:         code,
	}
	// A failed or undelivered report carries the same codes a send can
	// answer: the reason comes from the one classification table.
	if r.ErrorCode != "" && (r.Status == sms.StatusFailed || r.Status == sms.StatusUndelivered) {
		if n, err := strconv.Atoi(r.ErrorCode); err == nil {
			if rule, ok := codeRules[n]; ok && rule.class == sms.ClassRecipient {
				r.Reason = rule.reason
			}
		}
		if r.Reason == sms.ReasonOptedOut {
			r.Status, r.OptedOut = sms.StatusBlockedOptedOut, true
		}
	}
	return r
}

// FetchReport asks Twilio for a message's current status: how a lost
// status callback is made good. It returns (nil, nil) when Twilio does not
// know the SID. Errors are Fetch's.
func (c *Client) FetchReport(ctx context.Context, sid string) (*sms.Report, error) {
	acc, err := c.Fetch(ctx, sid)
	if err != nil || acc == nil {
		return nil, err
	}
	r := report(acc.ProviderMessageID, acc.Status, acc.ErrorCode)
	return &r, nil
}

// EventInbound is the inbox event type of an inbound SMS to our number.
const EventInbound = "message.inbound"

// ParseInbound implements sms.InboundParser for stored Twilio inbound-SMS
// webhooks (form-encoded, already verified by the api).
func (c *Client) ParseInbound(eventType string, raw []byte) (sms.Inbound, error) {
	return ParseInbound(eventType, raw)
}

// ParseInbound is Client.ParseInbound without a client.
func ParseInbound(eventType string, raw []byte) (sms.Inbound, error) {
	if eventType != EventInbound {
		return sms.Inbound{}, fmt.Errorf("twilio event type %q is not an inbound message", eventType)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return sms.Inbound{}, errors.New("twilio inbound webhook is not form-encoded")
	}
	in := sms.Inbound{
		Provider:          Provider,
		ProviderMessageID: first(form, "MessageSid", "SmsSid"),
		From:              form.Get("From"),
		To:                form.Get("To"),
		Body:              form.Get("Body"),
	}
	if in.ProviderMessageID == "" || in.From == "" {
		return sms.Inbound{}, errors.New("twilio inbound webhook lacks MessageSid or From")
	}
	return in, nil
}

func first(form url.Values, keys ...string) string {
	for _, k := range keys {
		if v := form.Get(k); v != "" {
			return v
		}
	}
	return ""
}
