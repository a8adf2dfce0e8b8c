// Package units converts wearable values between units in exact decimal
// arithmetic (math/big), so a conversion never invents digits that binary
// floating point would (154 lb is 69.85 kg, not 69.85322498000001 kg).
//
// A value is decimal text as the source sent it ("154", "0.97", "1.2e1").
// Scale multiplies it by an exact decimal factor and keeps the source's
// precision: when the exact product has more significant digits than the
// source value plus one guard digit, it is rounded (half away from zero) to
// that many — enough to convert back to the source value, no more. Exact
// scalings (0.97 × 100 = 97, 1.2 × 60 = 72, 69853 g ÷ 1000) are unchanged.
//
// Callers keep the source value and unit beside the normalised one
// (switchboard.wearable_samples.source_value, source_unit).
package units

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
)

// Limits of a value's text: longer or wider values are refused, so hostile
// input cannot make the arithmetic allocate without bound.
const (
	MaxTextLen  = 40
	MaxExponent = 30
)

// ErrValue is returned for text that is not a decimal number within limits.
var ErrValue = errors.New("is not a decimal number within range")

// Decimal is unscaled × 10^-scale.
type Decimal struct {
	unscaled big.Int
	scale    int
}

// Parse reads decimal text: an optional sign, digits with an optional
// point, an optional exponent. No NaN, Inf, hex or blanks.
func Parse(s string) (Decimal, error) {
	var d Decimal
	if s == "" || len(s) > MaxTextLen {
		return d, ErrValue
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e < -MaxExponent || e > MaxExponent {
			return d, ErrValue
		}
		mant, exp = s[:i], e
	}
	neg := false
	switch {
	case strings.HasPrefix(mant, "-"):
		neg, mant = true, mant[1:]
	case strings.HasPrefix(mant, "+"):
		mant = mant[1:]
	}
	intPart, frac, hasPoint := strings.Cut(mant, ".")
	if intPart == "" && frac == "" || hasPoint && strings.Contains(frac, ".") {
		return d, ErrValue
	}
	digits := intPart + frac
	for _, c := range digits {
		if c < '0' || c > '9' {
			return d, ErrValue
		}
	}
	if _, ok := d.unscaled.SetString(digits, 10); !ok {
		return d, ErrValue
	}
	if neg {
		d.unscaled.Neg(&d.unscaled)
	}
	d.scale = len(frac) - exp
	return d, nil
}

// MustParse is Parse for constants.
func MustParse(s string) Decimal {
	d, err := Parse(s)
	if err != nil {
		panic("units: bad constant " + s)
	}
	return d
}

// SignificantDigits counts the digits of the unscaled value without leading
// zeros (0.97 has 2, 154.0 has 4, 0 has 1).
func (d Decimal) SignificantDigits() int {
	n := len(new(big.Int).Abs(&d.unscaled).String())
	if n == 0 {
		return 1
	}
	return n
}

// Mul is the exact product.
func (d Decimal) Mul(o Decimal) Decimal {
	var r Decimal
	r.unscaled.Mul(&d.unscaled, &o.unscaled)
	r.scale = d.scale + o.scale
	return r
}

// Round rounds to at most sig significant digits, half away from zero.
func (d Decimal) Round(sig int) Decimal {
	n := d.SignificantDigits()
	if sig < 1 || n <= sig {
		return d
	}
	drop := n - sig
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(drop)), nil)
	abs := new(big.Int).Abs(&d.unscaled)
	q, rem := new(big.Int).QuoRem(abs, p, new(big.Int))
	if rem.Mul(rem, big.NewInt(2)).Cmp(p) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if d.unscaled.Sign() < 0 {
		q.Neg(q)
	}
	var r Decimal
	r.unscaled.Set(q)
	r.scale = d.scale - drop
	return r
}

// String is plain decimal text without exponent and without trailing
// zeros after the point ("69.85", "97", "-0.5").
func (d Decimal) String() string {
	abs := new(big.Int).Abs(&d.unscaled).String()
	sign := ""
	if d.unscaled.Sign() < 0 {
		sign = "-"
	}
	if d.scale <= 0 {
		if abs == "0" {
			return "0"
		}
		return sign + abs + strings.Repeat("0", -d.scale)
	}
	if len(abs) <= d.scale {
		abs = strings.Repeat("0", d.scale-len(abs)+1) + abs
	}
	i := len(abs) - d.scale
	out := strings.TrimRight(abs[:i]+"."+abs[i:], "0")
	out = strings.TrimSuffix(out, ".")
	if out == "0" {
		return "0"
	}
	return sign + out
}

// Float64 is the nearest float64 (for plausibility checks, not storage).
func (d Decimal) Float64() float64 {
	f, _ := strconv.ParseFloat(d.String(), 64)
	return f
}

// Scale multiplies value by factor and keeps value's precision (its
// significant digits plus one guard digit). Both are decimal text.
func Scale(value, factor string) (string, error) {
	v, err := Parse(value)
	if err != nil {
		return "", err
	}
	f, err := Parse(factor)
	if err != nil {
		return "", err
	}
	return v.Mul(f).Round(v.SignificantDigits() + 1).String(), nil
}
