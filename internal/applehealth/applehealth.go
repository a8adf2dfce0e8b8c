// Package applehealth parses and normalizes the HealthKit samples the app's
// iOS client uploads (there is no server API for Apple Health).
//
// # Upload contract
//
//	POST /v1/apple-health/samples
//	Authorization: Bearer <upload token>
//	{"samples": [{"uuid": "…", "type": "HKQuantityTypeIdentifierHeartRate",
//	  "value": 72, "unit": "count/min", "startDate": "2026-11-25T08:00:00-05:00",
//	  "endDate": "2026-11-25T08:00:00-05:00", "source": {"name": "…", "bundleId": "…"},
//	  "device": {"name": "Apple Watch", "manufacturer": "Apple Inc.", "model": "Watch"}}],
//	 "deleted": ["<uuid>", …]}
//
// Step counts are cumulative and raw samples from iPhone and Watch overlap:
// the client sends daily totals from a statistics query (a StepCount sample
// spanning a whole day, 23–25 hours); shorter step samples are kept raw and
// never pushed. Oxygen saturation arrives as a fraction (0.97) and becomes
// a percentage. Sleep arrives as category samples (value 0 inBed … 5 REM);
// asleep stages become sleep durations, inBed and awake are not measures.
//
// Parse is all or nothing: a batch with any malformed sample, or a sample of
// a type this package does not know, is refused whole with every problem
// listed (the unknown types too), so nothing partial is stored.
package applehealth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/wearables/units"
)

// Limits of one batch.
const (
	MaxSamples = 5000
	MaxDeleted = 5000
)

// HealthKit type identifiers this package knows.
const (
	TypeStepCount        = "HKQuantityTypeIdentifierStepCount"
	TypeHeartRate        = "HKQuantityTypeIdentifierHeartRate"
	TypeRestingHeartRate = "HKQuantityTypeIdentifierRestingHeartRate"
	TypeBodyMass         = "HKQuantityTypeIdentifierBodyMass"
	TypeOxygenSaturation = "HKQuantityTypeIdentifierOxygenSaturation"
	TypeSleepAnalysis    = "HKCategoryTypeIdentifierSleepAnalysis"
	TypeBPSystolic       = "HKQuantityTypeIdentifierBloodPressureSystolic"
	TypeBPDiastolic      = "HKQuantityTypeIdentifierBloodPressureDiastolic"
)

// types lists, per type, the HealthKit units accepted and the exact decimal
// factor to the UCUM unit of the kind (applied by internal/wearables/units,
// which keeps the source's precision).
var types = map[string]struct {
	kind  string
	ucum  string
	units map[string]string
}{
	TypeStepCount:        {"steps", "/d", map[string]string{"count": "1"}},
	TypeHeartRate:        {"heart_rate", "/min", map[string]string{"count/min": "1", "count/s": "60"}},
	TypeRestingHeartRate: {"resting_heart_rate", "/min", map[string]string{"count/min": "1"}},
	TypeBodyMass:         {"weight", "kg", map[string]string{"kg": "1", "g": "0.001", "lb": "0.45359237"}},
	TypeOxygenSaturation: {"spo2", "%", map[string]string{"%": "100"}},
	TypeSleepAnalysis:    {"sleep_duration", "min", map[string]string{"": "1"}},
	TypeBPSystolic:       {"blood_pressure_systolic", "mm[Hg]", map[string]string{"mmHg": "1"}},
	TypeBPDiastolic:      {"blood_pressure_diastolic", "mm[Hg]", map[string]string{"mmHg": "1"}},
}

// Number is a JSON number kept as the text the client sent, so a unit
// conversion starts from the source's digits, not from a float64.
type Number string

// UnmarshalJSON accepts a JSON number only (not a string).
func (n *Number) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) || !json.Valid(b) {
		return errors.New("value is not a JSON number")
	}
	*n = Number(b)
	return nil
}

// Sleep categories (HKCategoryValueSleepAnalysis).
var asleep = map[float64]string{1: "asleep", 3: "core", 4: "deep", 5: "rem"}

var uuidPattern = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// Batch is one upload.
type Batch struct {
	Samples []Sample `json:"samples"`
	Deleted []string `json:"deleted"`
}

// Sample is one HealthKit sample as uploaded.
type Sample struct {
	UUID      string          `json:"uuid"`
	Type      string          `json:"type"`
	Value     *Number         `json:"value"`
	Unit      string          `json:"unit"`
	StartDate string          `json:"startDate"`
	EndDate   string          `json:"endDate"`
	Source    *Source         `json:"source,omitempty"`
	Device    *Device         `json:"device,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// Source is the app that wrote the sample.
type Source struct {
	Name     string `json:"name,omitempty"`
	BundleID string `json:"bundleId,omitempty"`
}

// Device is the device that measured it.
type Device struct {
	Name         string `json:"name,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	LocalID      string `json:"localIdentifier,omitempty"`
}

// Problem is what is wrong with one sample: its index, field and why. It
// never holds a value.
type Problem struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is a refused batch: the problems and the unknown types.
type Error struct {
	Problems     []Problem `json:"problems,omitempty"`
	UnknownTypes []string  `json:"unknown_types,omitempty"`
	Message      string    `json:"message"`
}

func (e *Error) Error() string { return "apple health upload refused: " + e.Message }

// Quantity is a sample normalized to a Switchboard observation kind and a
// UCUM unit.
type Quantity struct {
	UUID string
	Kind string
	// Decimal is the normalized value as exact decimal text (what is
	// stored); Value is its float64 for plausibility checks.
	Decimal string
	Value   float64
	Unit    string
	// SourceValue and SourceUnit are what the client sent (empty for sleep
	// categories, whose value is a duration computed here).
	SourceValue string
	SourceUnit  string

	Start     time.Time
	End       *time.Time
	UTCOffset int // seconds east of UTC, from startDate
	// HighFrequency samples are kept raw and pushed as summaries per period.
	HighFrequency bool
	// Raw samples (step counts shorter than a day) are kept, never pushed.
	Raw    bool
	Device *Device
	Source *Source
}

// Parse decodes and validates body. It returns an *Error (a 400 for the
// caller) listing every problem, or the normalized quantities and the
// deleted uuids.
func Parse(body []byte) ([]Quantity, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var b Batch
	if err := dec.Decode(&b); err != nil {
		return nil, nil, &Error{Message: "body is not a JSON object {samples, deleted}"}
	}
	if dec.More() {
		return nil, nil, &Error{Message: "body has data after the JSON object"}
	}
	if len(b.Samples) == 0 && len(b.Deleted) == 0 {
		return nil, nil, &Error{Message: "samples and deleted are both empty"}
	}
	if len(b.Samples) > MaxSamples || len(b.Deleted) > MaxDeleted {
		return nil, nil, &Error{Message: fmt.Sprintf("at most %d samples and %d deleted uuids per upload", MaxSamples, MaxDeleted)}
	}
	var (
		problems []Problem
		unknown  = map[string]bool{}
		out      = make([]Quantity, 0, len(b.Samples))
		seen     = map[string]bool{}
	)
	for i, s := range b.Samples {
		q, ps, known := normalize(i, s)
		if !known {
			unknown[s.Type] = true
			continue
		}
		if len(ps) == 0 && seen[strings.ToLower(s.UUID)] {
			ps = append(ps, Problem{i, "uuid", "appears twice in the upload"})
		}
		seen[strings.ToLower(s.UUID)] = true
		problems = append(problems, ps...)
		if len(ps) == 0 && q != nil {
			out = append(out, *q)
		}
	}
	for i, u := range b.Deleted {
		if !uuidPattern.MatchString(u) {
			problems = append(problems, Problem{i, "deleted", "is not a UUID"})
		}
	}
	if len(problems) > 0 || len(unknown) > 0 {
		e := &Error{Problems: problems}
		for t := range unknown {
			e.UnknownTypes = append(e.UnknownTypes, t)
		}
		sort.Strings(e.UnknownTypes)
		switch {
		case len(unknown) > 0 && len(problems) > 0:
			e.Message = "unknown sample types and malformed samples; nothing was stored"
		case len(unknown) > 0:
			e.Message = "unknown sample types; nothing was stored"
		default:
			e.Message = "malformed samples; nothing was stored"
		}
		return nil, nil, e
	}
	deleted := make([]string, len(b.Deleted))
	for i, u := range b.Deleted {
		deleted[i] = strings.ToUpper(u)
	}
	return out, deleted, nil
}

// parseTime reads ISO 8601 with an offset.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, errors.New("is not ISO 8601 with an offset")
	}
	return t, nil
}

// normalize checks one sample and converts it. known is false for a type
// this package does not know. q is nil (without problems) for a sample that
// is valid but not a measure (sleep inBed, awake).
func normalize(i int, s Sample) (q *Quantity, problems []Problem, known bool) {
	t, ok := types[s.Type]
	if s.Type == "" {
		return nil, []Problem{{i, "type", "is required"}}, true
	}
	if !ok {
		return nil, nil, false
	}
	if !uuidPattern.MatchString(s.UUID) {
		problems = append(problems, Problem{i, "uuid", "is not a UUID"})
	}
	if s.Value == nil {
		problems = append(problems, Problem{i, "value", "is required"})
	}
	factor, unitOK := t.units[s.Unit]
	if !unitOK {
		problems = append(problems, Problem{i, "unit", fmt.Sprintf("must be one of %s for %s", unitList(t.units), s.Type)})
	}
	start, err := parseTime(s.StartDate)
	if err != nil {
		problems = append(problems, Problem{i, "startDate", err.Error()})
	}
	end, err2 := parseTime(s.EndDate)
	if err2 != nil {
		problems = append(problems, Problem{i, "endDate", err2.Error()})
	}
	if err == nil && err2 == nil && end.Before(start) {
		problems = append(problems, Problem{i, "endDate", "is before startDate"})
	}
	if len(problems) > 0 {
		return nil, problems, true
	}
	_, offset := start.Zone()
	src, err := units.Parse(string(*s.Value))
	if err != nil {
		return nil, []Problem{{i, "value", err.Error()}}, true
	}
	v := src.Float64()
	q = &Quantity{UUID: strings.ToUpper(s.UUID), Kind: t.kind, Unit: t.ucum, Start: start.UTC(), UTCOffset: offset, Device: s.Device, Source: s.Source}
	if s.Type != TypeSleepAnalysis {
		q.Decimal, err = units.Scale(string(*s.Value), factor)
		if err != nil {
			return nil, []Problem{{i, "value", err.Error()}}, true
		}
		q.Value = units.MustParse(q.Decimal).Float64()
		q.SourceValue, q.SourceUnit = src.String(), s.Unit
	}
	if !end.Equal(start) {
		e := end.UTC()
		q.End = &e
	}
	switch s.Type {
	case TypeSleepAnalysis:
		if v != math.Trunc(v) || v < 0 || v > 5 {
			return nil, []Problem{{i, "value", "must be a sleep category 0 to 5"}}, true
		}
		if _, ok := asleep[v]; !ok {
			return nil, nil, true // inBed, awake: not a sleep duration
		}
		q.Value = end.Sub(start).Minutes()
		q.Decimal = strconv.FormatFloat(q.Value, 'f', -1, 64)
	case TypeStepCount:
		span := end.Sub(start)
		if span < 23*time.Hour || span > 25*time.Hour {
			q.Raw, q.Unit = true, "{steps}"
		}
	case TypeHeartRate:
		q.HighFrequency = true
	}
	return q, nil, true
}

func unitList(m map[string]string) string {
	var us []string
	for u := range m {
		if u == "" {
			u = `"" (category)`
		}
		us = append(us, u)
	}
	sort.Strings(us)
	return strings.Join(us, ", ")
}

// KnownTypes lists the HealthKit identifiers Parse accepts.
func KnownTypes() []string {
	var out []string
	for t := range types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
