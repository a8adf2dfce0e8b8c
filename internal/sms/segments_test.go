package sms

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSegments(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		body string
		want int
	}{
		{name: "Short", body: "hello", want: 1},
		{name: "GSMFull", body: strings.Repeat("a", 160), want: 1},
		{name: "GSMTwo", body: strings.Repeat("a", 161), want: 2},
		{name: "GSMThree", body: strings.Repeat("a", 307), want: 3},
		{name: "GSMAccents", body: strings.Repeat("é", 160), want: 1},
		{name: "ExtensionCountsTwice", body: strings.Repeat("€", 80), want: 1},
		{name: "ExtensionOverflow", body: strings.Repeat("€", 81), want: 2},
		{name: "UCS2Full", body: strings.Repeat("ą", 70), want: 1},
		{name: "UCS2Two", body: strings.Repeat("ą", 71), want: 2},
		{name: "EmojiIsTwoUnits", body: strings.Repeat("🙂", 35), want: 1},
		{name: "EmojiOverflow", body: strings.Repeat("🙂", 36), want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, enc := Segments(tt.body)
			require.Equal(t, tt.want, n)
			wantEnc := EncodingGSM7
			if strings.HasPrefix(tt.name, "UCS2") || strings.HasPrefix(tt.name, "Emoji") {
				wantEnc = EncodingUCS2
			}
			require.Equal(t, wantEnc, enc)
		})
	}
}
