package telnyx_test

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	"github.com/switchboard-health/switchboard/internal/sms/smstest"
	"github.com/switchboard-health/switchboard/internal/telnyx"
)

// TestConformance: the Telnyx adapter meets the provider contract, against
// the Telnyx sandbox.
func TestConformance(t *testing.T) {
	t.Parallel()
	smstest.Run(t, func(t *testing.T) smstest.Harness {
		box := telnyxsandbox.New(telnyxsandbox.Config{APIKey: "KEYtest"}, slog.New(slog.DiscardHandler))
		srv := httptest.NewServer(box)
		t.Cleanup(srv.Close)
		c, err := telnyx.New(telnyx.Config{APIKey: "KEYtest", FromNumber: "+15005550007", PublicKey: box.PublicKeyBase64(),
			APIBaseURL: srv.URL, RequestTimeout: 5 * time.Second, DetailRecordLag: time.Millisecond}, nil)
		require.NoError(t, err)
		return smstest.Harness{Adapter: c, To: "+14155550123", UnknownID: "00000000-0000-0000-0000-000000000000"}
	})
}
