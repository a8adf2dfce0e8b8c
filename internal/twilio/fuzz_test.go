package twilio_test

import (
	"testing"

	"github.com/switchboard-health/switchboard/internal/twilio"
)

// FuzzParseReport: any stored Twilio status callback body either parses to
// a report naming a message id and a status word, or is refused; never a
// panic. Seeds: testdata/fuzz/FuzzParseReport.
func FuzzParseReport(f *testing.F) {
	f.Add("MessageSid=SM0123&MessageStatus=delivered&ErrorCode=")
	f.Add("SmsSid=SM1&SmsStatus=undelivered&ErrorCode=30003")
	f.Add("MessageSid=SM1&MessageStatus=failed&ErrorCode=21610")
	f.Add("%zz=1")
	f.Fuzz(func(t *testing.T, body string) {
		r, err := twilio.ParseReport(twilio.EventStatus, []byte(body))
		if err == nil && (r.ProviderMessageID == "" || r.ProviderStatus == "") {
			t.Fatalf("accepted a report without id or status: %+v", r)
		}
	})
}

// FuzzParseInbound: the same for inbound SMS bodies.
func FuzzParseInbound(f *testing.F) {
	f.Add("MessageSid=SM1&From=%2B15005550009&To=%2B15005550006&Body=STOP")
	f.Add("MessageSid=SM1&From=&To=&Body=")
	f.Fuzz(func(t *testing.T, body string) {
		in, err := twilio.ParseInbound(twilio.EventInbound, []byte(body))
		if err == nil && in.ProviderMessageID == "" {
			t.Fatalf("accepted an inbound SMS without id: %+v", in)
		}
	})
}
