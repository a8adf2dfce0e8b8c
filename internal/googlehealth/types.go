package googlehealth

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Data type ids (kebab-case, as in paths and notifications).
const (
	TypeSteps                 = "steps"
	TypeHeartRate             = "heart-rate"
	TypeDailyRestingHeartRate = "daily-resting-heart-rate"
	TypeWeight                = "weight"
	TypeSleep                 = "sleep"
	TypeDailyOxygenSaturation = "daily-oxygen-saturation"
	TypeOxygenSaturation      = "oxygen-saturation"
)

// TypeKind says how a data type is addressed in filters and windows.
type TypeKind int

// Kinds of data types.
const (
	KindSample   TypeKind = iota // sample_time.physical_time
	KindInterval                 // interval.start_time
	KindSession                  // interval.end_time (sleep: a night belongs to its end)
	KindDaily                    // date
)

// typeKinds maps the data types Switchboard reads to their kind.
var typeKinds = map[string]TypeKind{
	TypeSteps:                 KindInterval,
	TypeHeartRate:             KindSample,
	TypeDailyRestingHeartRate: KindDaily,
	TypeWeight:                KindSample,
	TypeSleep:                 KindSession,
	TypeDailyOxygenSaturation: KindDaily,
	TypeOxygenSaturation:      KindSample,
}

// KindOf returns a data type's kind and whether Switchboard knows the type.
func KindOf(dataType string) (TypeKind, bool) {
	k, ok := typeKinds[dataType]
	return k, ok
}

// Int64 is an int64 that Google sends as a JSON string (a number is accepted too).
type Int64 int64

// UnmarshalJSON implements json.Unmarshaler.
func (v *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("int64 value is not an integer")
	}
	*v = Int64(n)
	return nil
}

// MarshalJSON writes the value as Google does, a string.
func (v Int64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(v), 10) + `"`), nil
}

// Double is a float64 that may arrive as "NaN", "Infinity" or a string.
type Double float64

// UnmarshalJSON implements json.Unmarshaler. JSON null leaves the value
// as it is (proto3's JSON mapping allows null for a field at its default;
// an error here would refuse the whole page).
func (v *Double) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := strings.Trim(string(b), `"`)
	switch s {
	case "NaN":
		*v = Double(math.NaN())
		return nil
	case "Infinity":
		*v = Double(math.Inf(1))
		return nil
	case "-Infinity":
		*v = Double(math.Inf(-1))
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("double value is not a number")
	}
	*v = Double(f)
	return nil
}

// Duration is a protobuf duration string such as "-14400s".
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*d = 0
		return nil
	}
	if !strings.HasSuffix(s, "s") {
		return fmt.Errorf("duration %q does not end in s", s)
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "s"), 64)
	if err != nil {
		return fmt.Errorf("duration %q is not a number of seconds", s)
	}
	*d = Duration(time.Duration(f * float64(time.Second)))
	return nil
}

// MarshalJSON writes "<seconds>s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(time.Duration(d)/time.Second), 10) + `s"`), nil
}

// Seconds returns the duration in whole seconds.
func (d Duration) Seconds() int { return int(time.Duration(d) / time.Second) }

// Date is a civil date; month and day are plain integers.
type Date struct {
	Year  int `json:"year"`
	Month int `json:"month"`
	Day   int `json:"day"`
}

// DateOf returns t's civil date in t's location.
func DateOf(t time.Time) Date { y, m, d := t.Date(); return Date{y, int(m), d} }

// Time returns midnight of the date in loc.
func (d Date) Time(loc *time.Location) time.Time {
	return time.Date(d.Year, time.Month(d.Month), d.Day, 0, 0, 0, 0, loc)
}

// String returns YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// IsZero reports whether the date is unset.
func (d Date) IsZero() bool { return d.Year == 0 }

// Interval is a physical time interval with the original UTC offsets.
type Interval struct {
	StartTime      time.Time `json:"startTime"`
	StartUTCOffset Duration  `json:"startUtcOffset,omitempty"`
	EndTime        time.Time `json:"endTime"`
	EndUTCOffset   Duration  `json:"endUtcOffset,omitempty"`
}

// SampleTime is an instant with its original UTC offset.
type SampleTime struct {
	PhysicalTime time.Time `json:"physicalTime"`
	UTCOffset    Duration  `json:"utcOffset,omitempty"`
}

// DataSource says where a data point came from. There is no serial number.
type DataSource struct {
	RecordingMethod string `json:"recordingMethod,omitempty"`
	Platform        string `json:"platform,omitempty"`
	Device          *struct {
		DisplayName  string `json:"displayName,omitempty"`
		Manufacturer string `json:"manufacturer,omitempty"`
		FormFactor   string `json:"formFactor,omitempty"`
	} `json:"device,omitempty"`
	Application *struct {
		PackageName string `json:"packageName,omitempty"`
	} `json:"application,omitempty"`
}

// Fingerprint identifies the source of a data point (wearables.md §5):
// platform|recordingMethod|manufacturer|displayName|packageName.
func (s *DataSource) Fingerprint() string {
	if s == nil {
		return ""
	}
	var man, name, pkg string
	if s.Device != nil {
		man, name = s.Device.Manufacturer, s.Device.DisplayName
	}
	if s.Application != nil {
		pkg = s.Application.PackageName
	}
	return strings.Join([]string{s.Platform, s.RecordingMethod, man, name, pkg}, "|")
}

// DataPoint is one data point; exactly one of the typed fields is set.
type DataPoint struct {
	// Name is set on identifiable types (sleep, weight …); DataPointName on
	// reconciled reads.
	Name                  string                 `json:"name,omitempty"`
	DataPointName         string                 `json:"dataPointName,omitempty"`
	DataSource            *DataSource            `json:"dataSource,omitempty"`
	Steps                 *Steps                 `json:"steps,omitempty"`
	HeartRate             *HeartRate             `json:"heartRate,omitempty"`
	DailyRestingHeartRate *DailyRestingHeartRate `json:"dailyRestingHeartRate,omitempty"`
	Weight                *Weight                `json:"weight,omitempty"`
	Sleep                 *Sleep                 `json:"sleep,omitempty"`
	DailyOxygenSaturation *DailyOxygenSaturation `json:"dailyOxygenSaturation,omitempty"`
	OxygenSaturation      *OxygenSaturation      `json:"oxygenSaturation,omitempty"`
}

// Steps is a step count over an interval (per minute).
type Steps struct {
	Count    Int64    `json:"count"`
	Interval Interval `json:"interval"`
}

// HeartRate is one heart-rate sample.
type HeartRate struct {
	BeatsPerMinute Int64      `json:"beatsPerMinute"`
	SampleTime     SampleTime `json:"sampleTime"`
	Metadata       *struct {
		MotionContext  string `json:"motionContext,omitempty"`
		SensorLocation string `json:"sensorLocation,omitempty"`
	} `json:"metadata,omitempty"`
}

// DailyRestingHeartRate is one day's resting heart rate.
type DailyRestingHeartRate struct {
	Date           Date  `json:"date"`
	BeatsPerMinute Int64 `json:"beatsPerMinute"`
}

// Weight is a body weight sample, in grams.
type Weight struct {
	WeightGrams Double     `json:"weightGrams"`
	SampleTime  SampleTime `json:"sampleTime"`
}

// Sleep is one sleep session.
type Sleep struct {
	Interval Interval `json:"interval"`
	Type     string   `json:"type,omitempty"`
	Stages   []struct {
		Type      string    `json:"type"`
		StartTime time.Time `json:"startTime"`
		EndTime   time.Time `json:"endTime"`
	} `json:"stages,omitempty"`
	Summary struct {
		MinutesInSleepPeriod Int64 `json:"minutesInSleepPeriod"`
		MinutesAsleep        Int64 `json:"minutesAsleep"`
	} `json:"summary"`
	Metadata struct {
		Processed bool `json:"processed"`
		MainSleep bool `json:"mainSleep"`
	} `json:"metadata"`
}

// DailyOxygenSaturation is one day's SpO2 (percent, 0–100).
type DailyOxygenSaturation struct {
	Date                 Date   `json:"date"`
	AveragePercentage    Double `json:"averagePercentage"`
	LowerBoundPercentage Double `json:"lowerBoundPercentage,omitempty"`
	UpperBoundPercentage Double `json:"upperBoundPercentage,omitempty"`
}

// OxygenSaturation is one SpO2 sample (percent, 0–100).
type OxygenSaturation struct {
	Percentage Double     `json:"percentage"`
	SampleTime SampleTime `json:"sampleTime"`
}

// Page is one page of a list.
type Page struct {
	DataPoints    []DataPoint `json:"dataPoints"`
	NextPageToken string      `json:"nextPageToken,omitempty"`
}

// RollupPoint is one window of a daily roll-up (reconciled: phone and
// watch are not double-counted).
type RollupPoint struct {
	CivilStartTime CivilDateTime `json:"civilStartTime"`
	CivilEndTime   CivilDateTime `json:"civilEndTime"`
	Steps          *struct {
		CountSum Int64 `json:"countSum"`
	} `json:"steps,omitempty"`
}

// CivilDateTime is a civil date and time; zero fields may be omitted.
type CivilDateTime struct {
	Date Date `json:"date"`
	Time *struct {
		Hours   int `json:"hours,omitempty"`
		Minutes int `json:"minutes,omitempty"`
		Seconds int `json:"seconds,omitempty"`
	} `json:"time,omitempty"`
}

// RollupResponse is the answer of :dailyRollUp.
type RollupResponse struct {
	RollupDataPoints []RollupPoint `json:"rollupDataPoints"`
}

// DailyRollupRequest is the body of :dailyRollUp.
type DailyRollupRequest struct {
	Range struct {
		Start Date `json:"start"`
		End   Date `json:"end"`
	} `json:"range"`
	WindowSizeDays int `json:"windowSizeDays"`
}

// Identity is users/me/identity.
type Identity struct {
	HealthUserID string `json:"healthUserId"`
	LegacyUserID string `json:"legacyUserId,omitempty"`
}

// Settings is users/me/settings (the parts Switchboard uses).
type Settings struct {
	TimeZone string `json:"timeZone,omitempty"`
}

// Filter returns the AIP-160 filter selecting dataType's points in
// [start, end): by sample time, interval start, session end or civil date.
func Filter(dataType string, start, end time.Time) string {
	field := strings.ReplaceAll(dataType, "-", "_")
	switch typeKinds[dataType] {
	case KindDaily:
		return fmt.Sprintf(`%s.date >= "%s" AND %s.date < "%s"`, field, DateOf(start.UTC()), field, DateOf(end.UTC()))
	case KindSession:
		return fmt.Sprintf(`%s.interval.end_time >= "%s" AND %s.interval.end_time < "%s"`,
			field, start.UTC().Format(time.RFC3339), field, end.UTC().Format(time.RFC3339))
	case KindInterval:
		return fmt.Sprintf(`%s.interval.start_time >= "%s" AND %s.interval.start_time < "%s"`,
			field, start.UTC().Format(time.RFC3339), field, end.UTC().Format(time.RFC3339))
	default:
		return fmt.Sprintf(`%s.sample_time.physical_time >= "%s" AND %s.sample_time.physical_time < "%s"`,
			field, start.UTC().Format(time.RFC3339), field, end.UTC().Format(time.RFC3339))
	}
}
