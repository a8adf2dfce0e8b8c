package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one run measured. Every ratio compares two cases measured
// in this run on this database, one after the other or interleaved: on a
// shared machine only such ratios mean anything.
type Report struct {
	StartedAt time.Time `json:"started_at"`
	Server    string    `json:"server"`
	CPUs      int       `json:"cpus"`
	Database  string    `json:"database"`
	Settings  Settings  `json:"settings"`
	// Duration is the wall time of the whole run.
	Duration Duration `json:"duration"`
	Results  []Result `json:"results"`
	Windows  []Window `json:"soak_windows,omitempty"`
	Targets  []Target `json:"targets"`
	Notes    []string `json:"notes,omitempty"`
}

// Result is one measured case of a scenario.
type Result struct {
	Scenario string `json:"scenario"`
	Case     string `json:"case"`
	// Baseline marks the case the others of its group are compared with.
	Baseline bool   `json:"baseline,omitempty"`
	Group    string `json:"group,omitempty"`
	Clients  int    `json:"clients,omitempty"`
	// Throughput is operations (transactions, jobs or messages) per second.
	Throughput float64 `json:"throughput_per_s"`
	Latency    Summary `json:"latency"`
	// Latency2 is a second latency where a case has one (commit to the
	// status recorded, next to commit to the provider).
	Latency2 *Summary `json:"latency_recorded,omitempty"`
	// LatencyRatio and ThroughputRatio compare with the group's baseline:
	// median latency over the baseline's, throughput over the baseline's.
	LatencyRatio    float64 `json:"latency_ratio,omitempty"`
	ThroughputRatio float64 `json:"throughput_ratio,omitempty"`
	// PeakRSS is the peak resident set size of the process doing the work,
	// in bytes: this process for in-process cases, the worker for a child.
	PeakRSS int64  `json:"peak_rss_bytes,omitempty"`
	RSSOf   string `json:"peak_rss_of,omitempty"`
	Note    string `json:"note,omitempty"`

	// rawLatency keeps Latency's samples for cases merged across runs.
	rawLatency []time.Duration
}

// Window is one soak interval.
type Window struct {
	Start       Duration `json:"start"`
	Latency     Summary  `json:"latency"`
	JobDeadTup  int64    `json:"river_job_dead_tuples"`
	JobLiveTup  int64    `json:"river_job_live_tuples"`
	JobBytes    int64    `json:"river_job_bytes"`
	MsgDeadTup  int64    `json:"messages_dead_tuples"`
	Autovacuums int64    `json:"river_job_autovacuums"`
}

// Target is one of the goals of issue 7 and whether this run met it.
type Target struct {
	Name     string  `json:"name"`
	Met      bool    `json:"met"`
	Measured float64 `json:"measured"`
	Limit    string  `json:"limit"`
	Detail   string  `json:"detail"`
}

// Duration marshals as a Go duration string.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler. It returns an error for
// anything but a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as aligned text tables.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "switchboard bench — %s, %s, %d CPUs, database %s, %s\n",
		r.StartedAt.UTC().Format("2006-01-02 15:04 UTC"), r.Server, r.CPUs, r.Database, time.Duration(r.Duration).Round(time.Second))
	s := r.Settings
	fmt.Fprintf(w, "River client: sms workers %d, FetchCooldown %s, FetchPollInterval %s, pool %d conns, HTTP idle conns/host %d, provider concurrency = workers\n\n",
		s.Workers, s.FetchCooldown, s.FetchPollInterval, s.PoolSize, s.HTTPIdlePerHost)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "scenario\tcase\tclients\tn\tper s\tp50 ms\tp95 ms\tp99 ms\tvs baseline\tpeak RSS\t")
	last := ""
	for _, res := range r.Results {
		if res.Scenario != last && last != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t")
		}
		last = res.Scenario
		vs := "baseline"
		if !res.Baseline {
			vs = ""
			if res.LatencyRatio > 0 {
				vs = fmt.Sprintf("p50 %.2f×", res.LatencyRatio)
			}
			if res.ThroughputRatio > 0 {
				vs = strings.TrimSpace(vs + fmt.Sprintf(" rate %.2f×", res.ThroughputRatio))
			}
		}
		clients := ""
		if res.Clients > 0 {
			clients = fmt.Sprint(res.Clients)
		}
		lat := res.Latency
		p := func(v float64) string {
			if lat.N == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", res.Scenario, res.Case, clients, lat.N,
			res.Throughput, p(lat.P50), p(lat.P95), p(lat.P99), vs, mib(res.PeakRSS, res.RSSOf))
		if res.Latency2 != nil && res.Latency2.N > 0 {
			l2 := *res.Latency2
			fmt.Fprintf(tw, "%s\t%s\t\t%d\t\t%.2f\t%.2f\t%.2f\t\t\t\n", "", "  ↳ commit → status recorded", l2.N, l2.P50, l2.P95, l2.P99)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	notes := false
	for _, res := range r.Results {
		if res.Note != "" {
			if !notes {
				fmt.Fprintln(w, "\nnotes:")
				notes = true
			}
			fmt.Fprintf(w, "  %s / %s: %s\n", res.Scenario, res.Case, res.Note)
		}
	}

	if len(r.Windows) > 0 {
		fmt.Fprintln(w, "\nsoak, per window (commit → provider):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
		fmt.Fprintln(tw, "from\tn\tp50 ms\tp95 ms\tp99 ms\tmax ms\tjob dead tup\tjob live tup\tjob table MiB\tmsg dead tup\tjob autovacuums\t")
		for _, win := range r.Windows {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%.1f\t%d\t%d\t\n", time.Duration(win.Start), win.Latency.N,
				win.Latency.P50, win.Latency.P95, win.Latency.P99, win.Latency.Max, win.JobDeadTup, win.JobLiveTup,
				float64(win.JobBytes)/(1<<20), win.MsgDeadTup, win.Autovacuums)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		for _, t := range r.Targets {
			mark := "MET    "
			if !t.Met {
				mark = "NOT MET"
			}
			fmt.Fprintf(w, "  [%s] %s: %.2f (limit %s) — %s\n", mark, t.Name, t.Measured, t.Limit, t.Detail)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func mib(b int64, of string) string {
	if b <= 0 {
		return "-"
	}
	s := fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	if of != "" {
		s += " (" + of + ")"
	}
	return s
}

// compare fills the ratios of every non-baseline result of group against
// that group's baseline.
func compare(results []Result, group string) {
	var base *Result
	for i := range results {
		if results[i].Group == group && results[i].Baseline {
			base = &results[i]
		}
	}
	if base == nil {
		return
	}
	for i := range results {
		r := &results[i]
		if r.Group != group || r.Baseline {
			continue
		}
		if base.Latency.P50 > 0 && r.Latency.P50 > 0 {
			r.LatencyRatio = r.Latency.P50 / base.Latency.P50
		}
		if base.Throughput > 0 && r.Throughput > 0 {
			r.ThroughputRatio = r.Throughput / base.Throughput
		}
	}
}
