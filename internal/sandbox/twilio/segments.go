package twiliosandbox

import (
	"strings"
	"unicode/utf16"
)

// GSM 03.38: the basic character set (one septet each) and its extension
// table (two septets each: escape + character).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtended = "^{}\\[~]|€\f"
)

// segments counts the SMS segments of body: 160 GSM-7 septets in one
// segment or 153 per concatenated segment; otherwise UCS-2, 70 UTF-16 units
// in one segment or 67 per concatenated segment.
func segments(body string) int {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			septets++
		case strings.ContainsRune(gsmExtended, r):
			septets += 2
		default:
			gsm = false
		}
	}
	n, single, multi := septets, 160, 153
	if !gsm {
		n, single, multi = len(utf16.Encode([]rune(body))), 70, 67
	}
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}
