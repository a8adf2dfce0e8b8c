package telnyxsandbox

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

// isGSM reports whether text can be sent in GSM-7.
func isGSM(text string) bool {
	for _, r := range text {
		if !strings.ContainsRune(gsmBasic, r) && !strings.ContainsRune(gsmExtended, r) {
			return false
		}
	}
	return true
}

// segments counts the parts of text: 160 GSM-7 septets in one part or 153
// per concatenated part; otherwise UCS-2, 70 UTF-16 units in one part or
// 67 per concatenated part.
func segments(text string) int {
	n, single, multi := 0, 160, 153
	if isGSM(text) {
		for _, r := range text {
			n++
			if strings.ContainsRune(gsmExtended, r) {
				n++
			}
		}
	} else {
		n, single, multi = len(utf16.Encode([]rune(text))), 70, 67
	}
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}
