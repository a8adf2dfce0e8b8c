package twilio_test

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms/smstest"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

// TestConformance: the Twilio adapter meets the provider contract, against
// the Twilio sandbox.
func TestConformance(t *testing.T) {
	t.Parallel()
	smstest.Run(t, func(t *testing.T) smstest.Harness {
		box := twiliosandbox.New(twiliosandbox.Config{AccountSID: "ACtest", AuthToken: "authtoken"}, slog.New(slog.DiscardHandler))
		srv := httptest.NewServer(box)
		t.Cleanup(srv.Close)
		c, err := twilio.New(twilio.Config{AccountSID: "ACtest", AuthToken: "authtoken", FromNumber: "+15005550006",
			APIBaseURL: srv.URL, RequestTimeout: 5 * time.Second}, nil)
		require.NoError(t, err)
		return smstest.Harness{Adapter: c, To: "+14155550123", UnknownID: "SM00000000000000000000000000000000"}
	})
}
