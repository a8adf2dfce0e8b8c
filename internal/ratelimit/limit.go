package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidLimit is returned (wrapped) by ParseLimit, UnmarshalText and
// Limiter.Take for a limit that is malformed or out of range.
var ErrInvalidLimit = errors.New("invalid rate limit")

// Bounds the SQL function enforces too.
const (
	// MaxBurst is the largest Burst a Limit may have.
	MaxBurst = 10000
	// MaxInterval is the longest emission interval (Period/N) a Limit may
	// have: at least one event a day.
	MaxInterval = 24 * time.Hour
	// MinInterval is the shortest emission interval: PostgreSQL keeps time in
	// microseconds.
	MinInterval = time.Microsecond
)

// Limit is a rate: N events per Period, of which up to Burst (at least 1) may
// go back to back. Burst 1 paces calls evenly, one every Period/N.
//
// Its text form, parsed by ParseLimit and produced by String, is
//
//	N/PERIOD[ burst B]
//
// where N and B are positive decimal integers and PERIOD is s, min, h or d,
// or a Go duration such as 10s, 1m30s or 500ms. Examples: "1/s",
// "300/min", "10/s burst 5", "6000/10m burst 100".
type Limit struct {
	N      int
	Period time.Duration
	Burst  int
}

var namedPeriods = map[string]time.Duration{
	"s":   time.Second,
	"min": time.Minute,
	"h":   time.Hour,
	"d":   24 * time.Hour,
}

// ParseLimit parses the text form documented on Limit. A missing burst means
// 1. It returns an error wrapping ErrInvalidLimit for anything else: extra or
// missing spaces, signs, leading zeros, unknown period names, zero or
// negative values, or an emission interval outside [MinInterval, MaxInterval]
// or a burst above MaxBurst.
func ParseLimit(s string) (Limit, error) {
	rate, burst, hasBurst := strings.Cut(s, " burst ")
	n, period, ok := strings.Cut(rate, "/")
	if !ok {
		return Limit{}, fmt.Errorf("%w %q: want N/PERIOD[ burst B], e.g. 300/min", ErrInvalidLimit, s)
	}
	var l Limit
	var err error
	if l.N, err = parseCount(n); err != nil {
		return Limit{}, fmt.Errorf("%w %q: count: %v", ErrInvalidLimit, s, err)
	}
	if l.Period, err = parsePeriod(period); err != nil {
		return Limit{}, fmt.Errorf("%w %q: period: %v", ErrInvalidLimit, s, err)
	}
	l.Burst = 1
	if hasBurst {
		if l.Burst, err = parseCount(burst); err != nil {
			return Limit{}, fmt.Errorf("%w %q: burst: %v", ErrInvalidLimit, s, err)
		}
	}
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// parseCount accepts a positive decimal integer without sign or leading zeros.
func parseCount(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing number")
	}
	if len(s) > 9 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	if s[0] == '0' {
		return 0, fmt.Errorf("%q must be a positive number without leading zeros", s)
	}
	return strconv.Atoi(s)
}

// parsePeriod accepts a period name or a positive Go duration.
func parsePeriod(s string) (time.Duration, error) {
	if d, ok := namedPeriods[s]; ok {
		return d, nil
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("%q is not s, min, h, d or a duration such as 10s", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not s, min, h, d or a duration such as 10s", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

// Validate reports whether l can be used: N and Burst at least 1, Burst at
// most MaxBurst, and an Interval in [MinInterval, MaxInterval]. It returns an
// error wrapping ErrInvalidLimit.
func (l Limit) Validate() error {
	switch {
	case l.N < 1:
		return fmt.Errorf("%w: N must be at least 1, got %d", ErrInvalidLimit, l.N)
	case l.Period <= 0:
		return fmt.Errorf("%w: period must be positive, got %s", ErrInvalidLimit, l.Period)
	case l.Burst < 1 || l.Burst > MaxBurst:
		return fmt.Errorf("%w: burst must be 1 to %d, got %d", ErrInvalidLimit, MaxBurst, l.Burst)
	case l.Period/time.Duration(l.N) < MinInterval:
		return fmt.Errorf("%w: %d per %s is faster than one per %s", ErrInvalidLimit, l.N, l.Period, MinInterval)
	case l.Interval() > MaxInterval:
		return fmt.Errorf("%w: %d per %s is slower than one per %s", ErrInvalidLimit, l.N, l.Period, MaxInterval)
	}
	return nil
}

// Interval returns the emission interval Period/N, rounded up to a whole
// microsecond (PostgreSQL's resolution) so that rounding never admits more
// than the configured rate: 3/s is paced at one per 333.334 ms. It returns 0
// when N or Period is not positive.
func (l Limit) Interval() time.Duration {
	if l.N < 1 || l.Period <= 0 {
		return 0
	}
	n := time.Duration(l.N)
	d := l.Period / n
	if l.Period%n != 0 {
		d++
	}
	if d > MaxInterval {
		return d
	}
	if r := d % time.Microsecond; r != 0 {
		d += time.Microsecond - r
	}
	return d
}

// String returns l in the text form ParseLimit reads, omitting a burst of 1.
func (l Limit) String() string {
	var p string
	switch l.Period {
	case time.Second:
		p = "s"
	case time.Minute:
		p = "min"
	case time.Hour:
		p = "h"
	case 24 * time.Hour:
		p = "d"
	default:
		// Go spells 10 minutes "10m0s"; drop the zero tails.
		p = l.Period.String()
		if strings.HasSuffix(p, "m0s") {
			p = strings.TrimSuffix(p, "0s")
		}
		if strings.HasSuffix(p, "h0m") {
			p = strings.TrimSuffix(p, "0m")
		}
	}
	s := strconv.Itoa(l.N) + "/" + p
	if l.Burst > 1 {
		s += " burst " + strconv.Itoa(l.Burst)
	}
	return s
}

// MarshalText implements encoding.TextMarshaler with String's form.
func (l Limit) MarshalText() ([]byte, error) {
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseLimit, so a
// Limit can be a field of an environment config struct. It returns an error
// wrapping ErrInvalidLimit.
func (l *Limit) UnmarshalText(b []byte) error {
	v, err := ParseLimit(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
