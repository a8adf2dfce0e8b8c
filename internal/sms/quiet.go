package sms

import (
	"fmt"
	"strings"
	"time"
)

// QuietHours is a daily window, in the recipient's local time, in which
// app messages are not sent: they wait for its end, they are not dropped.
// The zero value has no window.
type QuietHours struct {
	start, end time.Duration // since local midnight; start > end wraps midnight
	set        bool
}

// ParseQuietHours reads "HH:MM-HH:MM" (e.g. "21:00-08:00"); "" means none.
func ParseQuietHours(s string) (QuietHours, error) {
	if s == "" {
		return QuietHours{}, nil
	}
	from, to, ok := strings.Cut(s, "-")
	a, errA := time.Parse("15:04", strings.TrimSpace(from))
	b, errB := time.Parse("15:04", strings.TrimSpace(to))
	if !ok || errA != nil || errB != nil || a.Equal(b) {
		return QuietHours{}, fmt.Errorf("SMS_QUIET_HOURS %q is not HH:MM-HH:MM with two different times", s)
	}
	since := func(t time.Time) time.Duration {
		return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	return QuietHours{start: since(a), end: since(b), set: true}, nil
}

// UnmarshalText lets envconfig read QuietHours.
func (q *QuietHours) UnmarshalText(b []byte) error {
	v, err := ParseQuietHours(string(b))
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// Until returns when a message due at now may go out in loc: now itself
// outside the window, or the window's end (a wall-clock time, so daylight
// saving changes do not shift it).
func (q QuietHours) Until(now time.Time, loc *time.Location) time.Time {
	if !q.set || loc == nil {
		return now
	}
	local := now.In(loc)
	at := time.Duration(local.Hour())*time.Hour + time.Duration(local.Minute())*time.Minute + time.Duration(local.Second())*time.Second
	end := func(dayOffset int) time.Time {
		return time.Date(local.Year(), local.Month(), local.Day()+dayOffset, int(q.end/time.Hour), int(q.end%time.Hour/time.Minute), 0, 0, loc)
	}
	switch {
	case q.start < q.end: // same day, e.g. 13:00-14:00
		if at >= q.start && at < q.end {
			return end(0)
		}
	default: // wraps midnight, e.g. 21:00-08:00
		if at >= q.start {
			return end(1)
		}
		if at < q.end {
			return end(0)
		}
	}
	return now
}
