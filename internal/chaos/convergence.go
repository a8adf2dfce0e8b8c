package chaos

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/sms"
)

// Bound is what a run's convergence is checked against. A send whose
// answer was lost (ambiguous) settles — adopted, or proven absent and sent
// again — within Settle of its attempt: its look-up may prove the copy
// absent only Lookup after the attempt (SMS_INFLIGHT_GRACE; with Telnyx
// among the providers, TELNYX_DETAIL_RECORD_LAG when longer), and the job
// asks again at most one retry later (the resend is in the same run). A
// resend that is ambiguous again starts the same bound anew. Every message
// must be final before the drain ends, Drain after the stream.
type Bound struct {
	Lookup   time.Duration
	LookupBy string        // the setting behind Lookup
	Retry    time.Duration // one retry: sms.RetryWait(quickRetries)
	Drain    time.Duration
	// Derived is the drain bound the run derives when Config.Drain is not
	// set: the mode's minimum, or Settle plus drainMargin when longer.
	Derived time.Duration
	// ModeDrain is that minimum (5 min chaos, 10 min delivery).
	ModeDrain time.Duration
}

// Settle is how long after an ambiguous attempt it has settled.
func (b Bound) Settle() time.Duration { return b.Lookup + b.Retry }

// quickRetries is how many failed runs in a row the bound's one retry
// allows for: sms_send's wait after its fifth (30 s) is the longest of its
// quick retries (sms.RetryWait).
const quickRetries = 5

// drainMargin is what a derived drain adds to the settle bound: a resend
// that fails again and is retried (sms_send's first retries), and River's
// scheduler on a loaded machine.
const drainMargin = 2 * time.Minute

// bound is cfg's Bound, from the settings its processes run with
// (childSettings: Config.ChildEnv may override them).
func (c Config) bound() Bound {
	b := Bound{
		Lookup: childSetting(c, "SMS_INFLIGHT_GRACE", inflightGrace), LookupBy: "SMS_INFLIGHT_GRACE",
		Retry: sms.RetryWait(quickRetries), ModeDrain: Defaults(c.Mode).minDrain(),
	}
	if slices.Contains(c.Providers, "telnyx") {
		if lag := childSetting(c, "TELNYX_DETAIL_RECORD_LAG", telnyxRecordLag); lag > b.Lookup {
			b.Lookup, b.LookupBy = lag, "TELNYX_DETAIL_RECORD_LAG"
		}
	}
	b.Derived = max(b.ModeDrain, b.Settle()+drainMargin)
	b.Drain = cmp.Or(c.Drain, b.Derived)
	return b
}

// String states the bound as the report prints it.
func (b Bound) String() string {
	s := fmt.Sprintf("an ambiguous send settles within %s of its attempt (%s %s before a look-up may prove it absent, then at most one retry, %s); "+
		"every message must be final within the drain, %s after the stream",
		b.Settle(), b.LookupBy, b.Lookup, b.Retry, b.Drain)
	switch {
	case b.Drain == b.Derived:
		s += fmt.Sprintf(" (derived: the longer of %s and that settle bound + %s margin)", b.ModeDrain, drainMargin)
	case b.Drain < b.Settle()+drainMargin:
		s += fmt.Sprintf(" (set; SHORTER than the settle bound + %s margin, %s: messages may legitimately be pending at its end)", drainMargin, b.Settle()+drainMargin)
	default:
		s += fmt.Sprintf(" (set; the derived bound is %s)", b.Derived)
	}
	return s
}

// Convergence is how long the messages a fault held up took to become
// final after it ended. A fault holds up every message of the run that was
// created before the fault ended and was not final (nor a dead letter,
// which includes a message held for an operator) at that moment: a
// superset of the ones it touched, measured from the database's own
// final_at, so the numbers do not depend on how often the suite polls.
type Convergence struct {
	Fault  string        // "twilio outage", "PostgreSQL restart -m immediate", "SIGKILL worker-2"
	Ended  time.Duration // since the stream started: outage over, PostgreSQL accepting connections, worker restarted and ready
	HeldUp int           // messages not final when the fault ended
	Open   int           // of those, not final at the check (still on their way, or lost)
	Max    time.Duration // slowest of the held-up messages that became final
	Median time.Duration
}

// faultEnds lists the end of every fault of the run, in order.
func (r *Result) faultEnds() []Convergence {
	var out []Convergence
	for _, o := range r.Outages {
		out = append(out, Convergence{Fault: o.Provider + " outage", Ended: o.At + o.Length})
	}
	for _, x := range r.Restarts {
		out = append(out, Convergence{Fault: "PostgreSQL restart -m " + x.Mode, Ended: x.Back})
	}
	for _, k := range r.Kills {
		out = append(out, Convergence{Fault: "SIGKILL " + k.Worker, Ended: k.Back})
	}
	slices.SortStableFunc(out, func(a, b Convergence) int { return int(a.Ended - b.Ended) })
	return out
}

// measureConvergence measures, for every fault, how long after its end
// the messages it held up became final.
func measureConvergence(ctx context.Context, pool *pgxpool.Pool, prefix string, started time.Time, faults []Convergence) ([]Convergence, error) {
	for i := range faults {
		f := &faults[i]
		end := started.Add(f.Ended)
		rows, err := pool.Query(ctx, `
SELECT extract(epoch FROM coalesce(m.final_at, CASE WHEN m.status = ANY ($3) THEN m.updated_at END, d.created_at) - $2)
FROM switchboard.messages m
LEFT JOIN LATERAL (SELECT created_at FROM switchboard.dead_letters d WHERE d.job_id = m.job_id ORDER BY d.id LIMIT 1) d ON true
WHERE m.idempotency_key LIKE $1 || '%' AND m.created_at < $2
  AND coalesce(m.final_at, CASE WHEN m.status = ANY ($3) THEN m.updated_at END, d.created_at, 'infinity') > $2`,
			prefix, end, finalStatuses)
		if err != nil {
			return nil, fmt.Errorf("error measuring convergence after the %s: %w", f.Fault, err)
		}
		var took []time.Duration
		for rows.Next() {
			var secs *float64
			if err := rows.Scan(&secs); err != nil {
				rows.Close()
				return nil, fmt.Errorf("error measuring convergence after the %s: %w", f.Fault, err)
			}
			f.HeldUp++
			if secs == nil {
				f.Open++
				continue
			}
			took = append(took, time.Duration(*secs*float64(time.Second)))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("error measuring convergence after the %s: %w", f.Fault, err)
		}
		f.Max, f.Median = maxMedian(took)
	}
	return faults, nil
}

func maxMedian(d []time.Duration) (time.Duration, time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)-1], d[len(d)/2]
}

// slowest is the fault whose held-up messages took longest, and whether
// any of them is still open.
func slowest(cs []Convergence) (Convergence, bool) {
	var s Convergence
	open := false
	for _, c := range cs {
		if c.Max > s.Max || s.Fault == "" {
			s = c
		}
		open = open || c.Open > 0
	}
	return s, open
}

func convergenceWord(cs []Convergence, b Bound) string {
	if len(cs) == 0 {
		return "no fault to converge from"
	}
	s, open := slowest(cs)
	if !open {
		return fmt.Sprintf("converged within %s of each fault's end (slowest after the %s; drain bound %s, settle bound %s)",
			s.Max.Round(time.Second), s.Fault, b.Drain, b.Settle())
	}
	n := 0
	for _, c := range cs {
		n = max(n, c.Open)
	}
	return fmt.Sprintf("NOT converged within the %s drain: up to %d messages a fault held up not final at the check (the slowest final one %s after the %s; settle bound %s)",
		b.Drain, n, s.Max.Round(time.Second), s.Fault, b.Settle())
}

func reportConvergence(p func(string, ...any), cs []Convergence, b Bound) {
	p("bound       %s", b)
	var maxes []time.Duration
	for _, c := range cs {
		line := fmt.Sprintf("converge    %s %s ended: %d messages held up, final within max %s, median %s",
			fmtOffset(c.Ended), c.Fault, c.HeldUp, c.Max.Round(100*time.Millisecond), c.Median.Round(100*time.Millisecond))
		if c.Open > 0 {
			line += fmt.Sprintf("; %d NOT FINAL at the check", c.Open)
		}
		p("%s", line)
		maxes = append(maxes, c.Max)
	}
	if len(cs) > 0 {
		mx, med := maxMedian(maxes)
		p("converge    over %d faults: slowest %s, median of the per-fault maxima %s", len(cs), mx.Round(100*time.Millisecond), med.Round(100*time.Millisecond))
	}
}
