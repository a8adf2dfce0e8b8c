package twilio_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

// The adapter pointed at the local sandbox, as `switchboard dev` does.
func ExampleClient_Send() {
	sandbox := httptest.NewServer(twiliosandbox.New(twiliosandbox.Config{AccountSID: "ACtest", AuthToken: "authtoken"}, nil))
	defer sandbox.Close()

	client, err := twilio.New(twilio.Config{
		AccountSID:     "ACtest",
		AuthToken:      "authtoken",
		FromNumber:     "+15005550006",
		APIBaseURL:     sandbox.URL,
		RequestTimeout: 10 * time.Second,
		ValidityPeriod: time.Hour,
	}, nil)
	if err != nil {
		panic(err)
	}

	acc, err := client.Send(context.Background(), sms.Outbound{MessageID: 1, To: "+15558675309", Body: "See you tomorrow at 9:00."})
	fmt.Println(acc.Status, acc.Segments, err)

	_, err = client.Send(context.Background(), sms.Outbound{MessageID: 2, To: "+15005550004", Body: "Hello again."})
	se := sms.AsSendError(client.Provider(), err)
	fmt.Println(se.Class, se.Reason, se.Code)

	// Output:
	// queued 1 <nil>
	// recipient opted_out 21610
}
