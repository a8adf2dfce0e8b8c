package twilio_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

func TestParseReport(t *testing.T) {
	t.Parallel()
	body := func(status, code string) []byte {
		f := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {status}, "AccountSid": {"ACtest"}}
		if code != "" {
			f.Set("ErrorCode", code)
		}
		return []byte(f.Encode())
	}
	cases := []struct {
		status, code string
		want         sms.Status
		reason       string
		optedOut     bool
	}{
		{"queued", "", sms.StatusSending, "", false},
		{"sent", "", sms.StatusSent, "", false},
		{"delivered", "", sms.StatusDelivered, "", false},
		{"read", "", sms.StatusDelivered, "", false},
		{"undelivered", "30003", sms.StatusUndelivered, sms.ReasonUnreachable, false},
		{"failed", "30006", sms.StatusFailed, sms.ReasonInvalidNumber, false},
		{"failed", "21610", sms.StatusBlockedOptedOut, sms.ReasonOptedOut, true},
		{"failed", "30007", sms.StatusFailed, "", false}, // our own (carrier filtering): no recipient reason
		{"receiving", "", "", "", false},                 // recorded, moves nothing
	}
	for _, tc := range cases {
		r, err := twilio.ParseReport(twilio.EventStatus, body(tc.status, tc.code))
		require.NoError(t, err, tc.status)
		require.Equal(t, "SM1", r.ProviderMessageID)
		require.Equal(t, tc.want, r.Status, "%s %s", tc.status, tc.code)
		require.Equal(t, tc.reason, r.Reason, "%s %s", tc.status, tc.code)
		require.Equal(t, tc.optedOut, r.OptedOut, "%s %s", tc.status, tc.code)
	}

	for name, raw := range map[string][]byte{
		"NoSid":    []byte("MessageStatus=sent"),
		"NoStatus": []byte("MessageSid=SM1"),
		"NotForm":  []byte("%zz"),
	} {
		_, err := twilio.ParseReport(twilio.EventStatus, raw)
		require.Error(t, err, name)
	}
	_, err := twilio.ParseReport("message.inbound", body("sent", ""))
	require.Error(t, err, "an inbound webhook is no status report")
}

func TestParseInbound(t *testing.T) {
	t.Parallel()
	raw := []byte(url.Values{"MessageSid": {"SM9"}, "From": {"+14155550123"}, "To": {"+15005550006"}, "Body": {"STOP"}}.Encode())
	in, err := twilio.ParseInbound(twilio.EventInbound, raw)
	require.NoError(t, err)
	require.Equal(t, sms.Inbound{Provider: "twilio", ProviderMessageID: "SM9", From: "+14155550123", To: "+15005550006", Body: "STOP"}, in)
	_, err = twilio.ParseInbound(twilio.EventInbound, []byte("Body=hi"))
	require.Error(t, err)
	_, err = twilio.ParseInbound(twilio.EventStatus, raw)
	require.Error(t, err)
}
