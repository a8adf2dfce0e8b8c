package sms

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

// Encodings of an SMS body.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// Segments counts the SMS segments of body and names its encoding: 160
// GSM-7 septets in one segment or 153 per concatenated segment; otherwise
// UCS-2, 70 UTF-16 units in one segment or 67 per concatenated segment.
func Segments(body string) (n int, encoding string) {
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
	units, single, multi, enc := septets, 160, 153, EncodingGSM7
	if !gsm {
		units, single, multi, enc = len(utf16.Encode([]rune(body))), 70, 67, EncodingUCS2
	}
	if units <= single {
		return 1, enc
	}
	return (units + multi - 1) / multi, enc
}
