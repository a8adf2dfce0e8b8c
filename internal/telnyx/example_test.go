package telnyx_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/telnyx"
)

// The adapter pointed at the local sandbox, as a development setup does.
func ExampleClient_Send() {
	sb := telnyxsandbox.New(telnyxsandbox.Config{APIKey: "KEYtest"}, nil)
	sandbox := httptest.NewServer(sb)
	defer sandbox.Close()

	client, err := telnyx.New(telnyx.Config{
		APIKey:         "KEYtest",
		FromNumber:     "+15005550006",
		PublicKey:      sb.PublicKeyBase64(),
		APIBaseURL:     sandbox.URL,
		RequestTimeout: 10 * time.Second,
	}, nil)
	if err != nil {
		panic(err)
	}

	acc, err := client.Send(context.Background(), sms.Outbound{MessageID: 1, To: "+15558675309", Body: "See you tomorrow at 9:00."})
	fmt.Println(acc.Status, acc.Segments, err)

	_, err = client.Send(context.Background(), sms.Outbound{MessageID: 2, To: telnyxsandbox.OptedOutNumber, Body: "Hello again."})
	se := sms.AsSendError(client.Provider(), err)
	fmt.Println(se.Class, se.Reason, se.Code)

	// Output:
	// queued 1 <nil>
	// recipient opted_out 40300
}

// Verify checks a webhook's Ed25519 signature over timestamp|body and its
// timestamp's age; the errors say which check failed.
func ExampleVerify() {
	key, err := telnyx.ParsePublicKey("AeOZ9nc212hUsHEWsov+UfWPAknhjxqi9AYLUStgW64=")
	if err != nil {
		panic(err)
	}
	body := []byte(`{"data":{"event_type":"message.finalized","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2026-01-01T00:00:00.000+00:00","payload":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6","to":[{"phone_number":"+15558675309","status":"delivered"}]},"record_type":"event"},"meta":{"attempt":1}}`)
	signature := "3kG7UeA/fS/9XAuRJ/qhww3b9AWmdRdUuWb0fQBpUA7+4C5G5RX8Y+uQQJgnFohWhfZjIsgk+qtskSma8chnDw=="
	signedAt := time.Unix(1767225600, 0)

	fmt.Println(telnyx.Verify(key, body, signature, "1767225600", signedAt.Add(time.Minute)))
	fmt.Println(telnyx.Verify(key, body, signature, "1767225600", signedAt.Add(time.Hour)))
	fmt.Println(telnyx.Verify(key, body[1:], signature, "1767225600", signedAt))

	// Output:
	// <nil>
	// telnyx webhook: timestamp outside the tolerance: 1h0m0s off
	// telnyx webhook: bad signature
}
