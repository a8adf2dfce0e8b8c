package googlehealth_test

import (
	"testing"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
)

// FuzzParseNotifications: any Google Health notification body parses to
// notifications that each name a user and a data type, or is refused; never
// a panic; the accepted operations are UPSERT, DELETE or none. Seeds: testdata/fuzz/FuzzParseNotifications.
func FuzzParseNotifications(f *testing.F) {
	f.Add([]byte(`{"data":{"healthUserId":"u1","dataType":"steps"}}`))
	f.Add([]byte(`[{"data":{"healthUserId":"u1","dataType":"heart-rate"}},{"healthUserId":"u2","dataType":"weight"}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ns, err := googlehealth.ParseNotifications(body)
		if err != nil {
			return
		}
		if len(ns) == 0 {
			t.Fatal("no error and no notification")
		}
		for _, n := range ns {
			if n.HealthUserID == "" || n.DataType == "" {
				t.Fatal("a notification without a user or a data type")
			}
			if n.Operation != "" && n.Operation != "UPSERT" && n.Operation != "DELETE" {
				t.Fatal("a notification with an operation other than UPSERT or DELETE")
			}
		}
	})
}

// FuzzParseKeyset: the signing keyset fetched from Google.
func FuzzParseKeyset(f *testing.F) {
	f.Add([]byte(`{"primaryKeyId":1,"key":[]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = googlehealth.ParseKeyset(body)
	})
}
