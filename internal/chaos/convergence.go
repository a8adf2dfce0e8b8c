package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

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

func convergenceWord(cs []Convergence) string {
	if len(cs) == 0 {
		return "no fault to converge from"
	}
	s, open := slowest(cs)
	if !open {
		return fmt.Sprintf("converged within %s of each fault's end (slowest after the %s)", s.Max.Round(time.Second), s.Fault)
	}
	n := 0
	for _, c := range cs {
		n = max(n, c.Open)
	}
	return fmt.Sprintf("NOT converged: up to %d messages a fault held up not final at the check (the slowest final one %s after the %s)",
		n, s.Max.Round(time.Second), s.Fault)
}

func reportConvergence(p func(string, ...any), cs []Convergence) {
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
