package telnyxsandbox_test

import (
	"crypto/ed25519"
	"fmt"

	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
)

// Sign computes the telnyx-signature-ed25519 header of a webhook: the
// Ed25519 signature of timestamp|body, in base64.
func ExampleSign() {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // a fixed test key; OpenSSL signs the same
	body := []byte(`{"data":{"event_type":"message.sent","id":"e1","payload":{"id":"m1"}}}`)
	fmt.Println(telnyxsandbox.Sign(key, "1767225600", body))
	// Output: 5vvEuMRC7NXXvAQKXNUzTT7P656Gn3IqVmaekjDI5p4dLrZGyUOArAcugTWN0sU38VOUwCFyvwbUhiTU056HBw==
}
