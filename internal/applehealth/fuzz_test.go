package applehealth_test

import (
	"testing"

	"github.com/switchboard-health/switchboard/internal/applehealth"
)

// FuzzParse: any Apple Health upload body is refused with an error or
// parsed into quantities; never a panic. Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"samples":[{"uuid":"0F0E0D0C-0B0A-0908-0706-050403020100","type":"HKQuantityTypeIdentifierStepCount","value":120,"unit":"count","start":"2026-01-02T03:04:05Z","end":"2026-01-02T03:14:05Z"}]}`))
	f.Add([]byte(`{"deleted":["0F0E0D0C-0B0A-0908-0706-050403020100"]}`))
	f.Add([]byte(`{"samples":[{"type":"HKQuantityTypeIdentifierBodyMass","value":154,"unit":"lb"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		qs, deleted, err := applehealth.Parse(body)
		if err != nil && (len(qs) > 0 || len(deleted) > 0) {
			t.Fatal("an error with results")
		}
	})
}
