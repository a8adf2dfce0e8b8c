package wearables

import (
	"encoding/json"
	"time"
)

// dayFloor is midnight UTC of t.
func dayFloor(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// dayWindows splits [from, to) into whole UTC days: windows are aligned so
// notifications, polls and backfills of the same day have the same args
// (one unique job).
func dayWindows(from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	for d := dayFloor(from); d.Before(to); d = d.Add(24 * time.Hour) {
		out = append(out, [2]time.Time{d, d.Add(24 * time.Hour)})
	}
	return out
}

// cursor is one data type's progress on a connection
// (device_connections.cursors): synced until Until, or disabled and why.
type cursor struct {
	Until    *time.Time `json:"until,omitempty"`
	Disabled string     `json:"disabled,omitempty"`
}

// cursors reads a connection's cursors by data type; unreadable JSON reads
// as none.
func cursors(raw json.RawMessage) map[string]cursor {
	out := map[string]cursor{}
	_ = json.Unmarshal(raw, &out)
	return out
}
