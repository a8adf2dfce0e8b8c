package twilio

import (
	"errors"
	"fmt"
	"net/url"

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
	r := sms.Report{
		Provider:          Provider,
		ProviderMessageID: sid,
		ProviderStatus:    word,
		Status:            statusMap[word],
		ErrorCode:         form.Get("ErrorCode"),
	}
	if r.ErrorCode != "" && (r.Status == sms.StatusFailed || r.Status == sms.StatusUndelivered) {
		switch r.ErrorCode {
		case "21610":
			r.Status, r.Reason, r.OptedOut = sms.StatusBlockedOptedOut, sms.ReasonOptedOut, true
		case "21211", "21614", "30005", "30006":
			r.Reason = sms.ReasonInvalidNumber
		case "30003", "30004":
			r.Reason = sms.ReasonUnreachable
		}
	}
	return r, nil
}

func first(form url.Values, keys ...string) string {
	for _, k := range keys {
		if v := form.Get(k); v != "" {
			return v
		}
	}
	return ""
}
