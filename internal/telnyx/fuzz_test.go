package telnyx_test

import (
	"testing"

	"github.com/switchboard-health/switchboard/internal/telnyx"
)

const seedEvent = `{"data":{"record_type":"event","id":"ev-1","event_type":"message.finalized","occurred_at":"2026-01-02T03:04:05Z","payload":{"id":"msg-1","to":[{"phone_number":"+15005550009","status":"delivered"}],"errors":[]}}}`

// FuzzParseEvent: any Telnyx webhook body parses to an event with ids and a
// type, or is refused; never a panic. Seeds: testdata/fuzz/FuzzParseEvent.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(seedEvent))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := telnyx.ParseEvent(body)
		if err == nil && ev.ID == "" {
			t.Fatalf("accepted an event without id: %+v", ev)
		}
		_, _ = telnyx.ParseInbound(body)
	})
}

// FuzzParseReport: status reports from Telnyx events.
func FuzzParseReport(f *testing.F) {
	f.Add("message.finalized", []byte(seedEvent))
	f.Add("message.sent", []byte(seedEvent))
	f.Fuzz(func(t *testing.T, eventType string, body []byte) {
		r, err := telnyx.ParseReport(eventType, body)
		if err == nil && r.ProviderMessageID == "" {
			t.Fatalf("accepted a report without id: %+v", r)
		}
	})
}

// FuzzParsePublicKey: TELNYX_PUBLIC_KEY is configuration, but it is text
// from outside: refused or a 32-byte key.
func FuzzParsePublicKey(f *testing.F) {
	f.Add("MCowBQYDK2VwAyEAl0qvLYQ0nC1l2P4JX6fX5v1kz3d0A0n8bQ4lF0r9mH0=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := telnyx.ParsePublicKey(s)
		if err == nil && len(k) != 32 {
			t.Fatalf("key of %d bytes", len(k))
		}
	})
}
