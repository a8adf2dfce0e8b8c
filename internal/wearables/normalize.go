package wearables

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/applehealth"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/wearables/units"
)

// Sources of wearable data (observations.source).
const (
	SourceGoogle = "google_health"
	SourceApple  = "apple_health"
)

// Rejection reasons: why a value is physically impossible or unusable. A
// rejected sample is kept (wearable_samples) and never pushed.
const (
	RejectNotANumber     = "not_a_number"
	RejectOutOfRange     = "out_of_range"
	RejectSentinel       = "sentinel_value"
	RejectFuture         = "future_time"
	RejectEndBeforeStart = "end_before_start"
	RejectUnit           = "unit_not_allowed"
)

// Interpretation flags (FHIR v3 ObservationInterpretation): abnormal but
// possible values are pushed with one, never suppressed.
const (
	FlagLow  = "L"
	FlagHigh = "H"
)

// Measure is one observation kind's normalization and plausibility rules
// (wearables.md §10; accept and flag ranges are engineering judgement).
// The kind's LOINC code and category are not here: their one source is
// switchboard.observation_kinds (internal/obskind).
type Measure struct {
	Kind string
	// Units the ranges below are in (UCUM), a subset of the kind's units
	// in switchboard.observation_kinds; the first is what Switchboard
	// records.
	Units []string
	// Values outside [AcceptMin, AcceptMax] are rejected.
	AcceptMin, AcceptMax float64
	// Values below FlagBelow or above FlagAbove (when set) are flagged.
	FlagBelow, FlagAbove *float64
}

func f(v float64) *float64 { return &v }

// Measures is the table of wearables.md §10 for the kinds Switchboard
// records. A test checks every kind and unit is one switchboard.observation_kinds
// accepts.
var Measures = map[string]Measure{
	"heart_rate":               {"heart_rate", []string{"/min"}, 25, 250, f(35), f(220)},
	"resting_heart_rate":       {"resting_heart_rate", []string{"/min"}, 25, 150, f(35), f(120)},
	"steps":                    {"steps", []string{"/d", "{steps}"}, 0, 100000, nil, f(60000)},
	"weight":                   {"weight", []string{"kg"}, 0.5, 500, nil, nil},
	"sleep_duration":           {"sleep_duration", []string{"min"}, 0, 24 * 60, f(120), f(16 * 60)},
	"spo2":                     {"spo2", []string{"%"}, 50, 100, f(88), nil},
	"blood_pressure_systolic":  {"blood_pressure_systolic", []string{"mm[Hg]"}, 50, 300, nil, f(179.999)},
	"blood_pressure_diastolic": {"blood_pressure_diastolic", []string{"mm[Hg]"}, 20, 200, nil, f(119.999)},
}

// Device is the device a measurement came from, as the source names it.
type Device struct {
	ExternalID   string
	Manufacturer string
	Model        string
	DisplayName  string
}

// Measurement is one normalized data point: kind (→ LOINC), UCUM unit,
// value, effective instant (End nil) or period, the original UTC offset,
// source and a dedupe key unique per source.
type Measurement struct {
	Kind  string
	Value float64
	// Decimal is Value as exact decimal text when a conversion produced it
	// (internal/wearables/units); stored instead of Value's float text.
	Decimal string
	Unit    string
	// SourceValue and SourceUnit are the value and unit as the source sent
	// them, stored beside the normalized ones (empty: same as normalized).
	SourceValue string
	SourceUnit  string

	Start     time.Time
	End       *time.Time
	UTCOffset *int // seconds east of UTC
	Source    string
	SourceID  string
	Device    *Device
	// HighFrequency: kept raw, pushed as summaries per period.
	HighFrequency bool
	// Raw: kept, never pushed (e.g. step intervals that would double count).
	Raw bool
	// Session: a whole session (sleep), so duration flags apply.
	Session bool
	// Sentinel is a value the source uses for "no reading".
	Sentinel *float64

	// Set by Assess.
	Interpretation string
	Rejection      string
}

// Assess sets m's rejection reason (physically impossible or unusable:
// kept, not pushed) or interpretation flag (abnormal but possible: pushed
// with the flag). now bounds effective times (at most a day ahead, as
// record_observation does).
func Assess(m *Measurement, now time.Time) {
	m.Interpretation, m.Rejection = "", ""
	me, ok := Measures[m.Kind]
	switch {
	case !ok:
		m.Rejection = RejectUnit
		return
	case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
		m.Rejection = RejectNotANumber
		return
	case !allowed(me.Units, m.Unit):
		m.Rejection = RejectUnit
		return
	case m.Sentinel != nil && m.Value == *m.Sentinel:
		m.Rejection = RejectSentinel
		return
	case m.Start.After(now.Add(24 * time.Hour)):
		m.Rejection = RejectFuture
		return
	case m.End != nil && m.End.Before(m.Start):
		m.Rejection = RejectEndBeforeStart
		return
	case m.Value < me.AcceptMin || m.Value > me.AcceptMax:
		m.Rejection = RejectOutOfRange
		return
	}
	if m.Kind == "sleep_duration" && !m.Session {
		return
	}
	if me.FlagBelow != nil && m.Value < *me.FlagBelow {
		m.Interpretation = FlagLow
	}
	if me.FlagAbove != nil && m.Value > *me.FlagAbove {
		m.Interpretation = FlagHigh
	}
}

func allowed(units []string, u string) bool {
	for _, x := range units {
		if x == u {
			return true
		}
	}
	return false
}

func offsetPtr(seconds int) *int { return &seconds }

// gsource is the source id prefix of a Google connection's points.
func gsource(healthUserID, dataType string) string {
	return "gh:" + healthUserID + ":" + dataType + ":"
}

// googleDevice names the device of a Google data point by its fingerprint.
func googleDevice(src *googlehealth.DataSource) *Device {
	if src == nil || src.Device == nil {
		return nil
	}
	fp := src.Fingerprint()
	return &Device{ExternalID: fp, Manufacturer: src.Device.Manufacturer, Model: src.Device.FormFactor, DisplayName: src.Device.DisplayName}
}

// dedupeKey is a point's key: its name for identifiable types, else
// (type, time, source fingerprint).
func dedupeKey(healthUserID, dataType string, p googlehealth.DataPoint, at string) string {
	prefix := gsource(healthUserID, dataType)
	if p.Name != "" {
		return prefix + p.Name
	}
	if p.DataPointName != "" {
		return prefix + p.DataPointName
	}
	key := prefix + at + "|" + p.DataSource.Fingerprint()
	if len(key) > 300 {
		key = key[:300]
	}
	return key
}

// FromGoogle normalizes one Google data point of dataType. ok is false for
// a point that is not (yet) a measure: an unprocessed sleep session, or a
// type this package does not record.
func FromGoogle(healthUserID, dataType string, p googlehealth.DataPoint) (Measurement, bool) {
	m := Measurement{Source: SourceGoogle, Device: googleDevice(p.DataSource)}
	switch {
	case dataType == googlehealth.TypeHeartRate && p.HeartRate != nil:
		st := p.HeartRate.SampleTime
		m.Kind, m.Unit, m.Value, m.HighFrequency = "heart_rate", "/min", float64(p.HeartRate.BeatsPerMinute), true
		m.Start, m.UTCOffset = st.PhysicalTime.UTC(), offsetPtr(st.UTCOffset.Seconds())
		m.SourceID = dedupeKey(healthUserID, dataType, p, m.Start.Format(time.RFC3339Nano))
	case dataType == googlehealth.TypeWeight && p.Weight != nil:
		st := p.Weight.SampleTime
		m.Kind, m.Unit, m.Value = "weight", "kg", float64(p.Weight.WeightGrams)/1000
		if g := float64(p.Weight.WeightGrams); !math.IsNaN(g) && !math.IsInf(g, 0) {
			grams := strconv.FormatFloat(g, 'f', -1, 64)
			if kg, err := units.Scale(grams, "0.001"); err == nil {
				m.Decimal, m.Value, m.SourceValue, m.SourceUnit = kg, units.MustParse(kg).Float64(), grams, "g"
			}
		}
		m.Start, m.UTCOffset = st.PhysicalTime.UTC(), offsetPtr(st.UTCOffset.Seconds())
		m.SourceID = dedupeKey(healthUserID, dataType, p, m.Start.Format(time.RFC3339Nano))
	case dataType == googlehealth.TypeOxygenSaturation && p.OxygenSaturation != nil:
		st := p.OxygenSaturation.SampleTime
		m.Kind, m.Unit, m.Value, m.Sentinel = "spo2", "%", float64(p.OxygenSaturation.Percentage), f(50)
		m.Start, m.UTCOffset = st.PhysicalTime.UTC(), offsetPtr(st.UTCOffset.Seconds())
		m.SourceID = dedupeKey(healthUserID, dataType, p, m.Start.Format(time.RFC3339Nano))
	case dataType == googlehealth.TypeSleep && p.Sleep != nil:
		if !p.Sleep.Metadata.Processed {
			return m, false // read again later
		}
		iv := p.Sleep.Interval
		end := iv.EndTime.UTC()
		m.Kind, m.Unit, m.Value, m.Session = "sleep_duration", "min", float64(p.Sleep.Summary.MinutesAsleep), true
		m.Start, m.End, m.UTCOffset = iv.StartTime.UTC(), &end, offsetPtr(iv.EndUTCOffset.Seconds())
		m.SourceID = dedupeKey(healthUserID, dataType, p, m.Start.Format(time.RFC3339)+"/"+end.Format(time.RFC3339))
	case dataType == googlehealth.TypeDailyRestingHeartRate && p.DailyRestingHeartRate != nil:
		d := p.DailyRestingHeartRate.Date
		m.Kind, m.Unit, m.Value = "resting_heart_rate", "/min", float64(p.DailyRestingHeartRate.BeatsPerMinute)
		m.Start = d.Time(time.UTC)
		m.SourceID = gsource(healthUserID, dataType) + d.String()
	case dataType == googlehealth.TypeDailyOxygenSaturation && p.DailyOxygenSaturation != nil:
		d := p.DailyOxygenSaturation.Date
		m.Kind, m.Unit, m.Value, m.Sentinel = "spo2", "%", float64(p.DailyOxygenSaturation.AveragePercentage), f(50)
		m.Start = d.Time(time.UTC)
		m.SourceID = gsource(healthUserID, dataType) + d.String()
	case dataType == googlehealth.TypeSteps && p.Steps != nil:
		iv := p.Steps.Interval
		end := iv.EndTime.UTC()
		m.Kind, m.Unit, m.Value, m.Raw = "steps", "{steps}", float64(p.Steps.Count), true
		m.Start, m.End, m.UTCOffset = iv.StartTime.UTC(), &end, offsetPtr(iv.StartUTCOffset.Seconds())
		m.SourceID = dedupeKey(healthUserID, dataType, p, m.Start.Format(time.RFC3339)+"/"+end.Format(time.RFC3339))
	default:
		return m, false
	}
	return m, true
}

// FromGoogleDailySteps normalizes one day of the steps roll-up: the day's
// reconciled total over [local midnight, next midnight) in loc.
func FromGoogleDailySteps(healthUserID string, p googlehealth.RollupPoint, loc *time.Location) (Measurement, bool) {
	if p.Steps == nil || p.CivilStartTime.Date.IsZero() {
		return Measurement{}, false
	}
	d := p.CivilStartTime.Date
	start := d.Time(loc)
	end := start.AddDate(0, 0, 1)
	_, off := start.Zone()
	startUTC, endUTC := start.UTC(), end.UTC()
	return Measurement{
		Kind: "steps", Unit: "/d", Value: float64(p.Steps.CountSum), Source: SourceGoogle,
		Start: startUTC, End: &endUTC, UTCOffset: offsetPtr(off),
		SourceID: gsource(healthUserID, googlehealth.TypeSteps) + "daily:" + d.String(),
	}, true
}

// FromApple turns a normalized HealthKit quantity into a measurement.
func FromApple(q applehealth.Quantity) Measurement {
	m := Measurement{
		Kind: q.Kind, Value: q.Value, Decimal: q.Decimal, Unit: q.Unit, SourceValue: q.SourceValue, SourceUnit: q.SourceUnit, Start: q.Start, End: q.End, UTCOffset: offsetPtr(q.UTCOffset),
		Source: SourceApple, SourceID: q.UUID, HighFrequency: q.HighFrequency, Raw: q.Raw,
	}
	if q.Device != nil && (q.Device.Name != "" || q.Device.Model != "" || q.Device.LocalID != "") {
		id := q.Device.LocalID
		if id == "" {
			id = strings.Join([]string{q.Device.Manufacturer, q.Device.Model, q.Device.Name}, "|")
		}
		m.Device = &Device{ExternalID: id, Manufacturer: q.Device.Manufacturer, Model: q.Device.Model, DisplayName: q.Device.Name}
	}
	return m
}

// String describes m without its value (PHI-free, for logs and errors).
func (m Measurement) String() string {
	return fmt.Sprintf("%s %s %s", m.Source, m.Kind, m.Start.Format(time.RFC3339))
}
