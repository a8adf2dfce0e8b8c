package twiliosandbox_test

import (
	"fmt"
	"net/url"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// Sign computes the X-Twilio-Signature of a status callback: the URL with
// its query, then every parameter as name+value, sorted by name.
func ExampleSign() {
	params := url.Values{
		"MessageSid":    {"SM0123456789abcdef0123456789abcdef"},
		"MessageStatus": {"delivered"},
	}
	sig := twiliosandbox.Sign("authtoken", "https://switchboard.example/webhooks/twilio/status?m=42", params)
	fmt.Println(sig)
	// Output: X/uWgJAzg/88tqV3Bkz8AUJrwVU=
}
