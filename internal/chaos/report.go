package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Verdict is the run's one-line summary: PASS or FAIL and the numbers
// behind it. A run whose checks could not run still ends in one: FAIL
// with the reason.
func (r *Result) Verdict() string {
	fails := r.Failures()
	word := "PASS"
	if len(fails) > 0 {
		word = "FAIL"
	}
	c := r.Check
	if c == nil {
		return fmt.Sprintf("%s: FAIL %s; wall %s", r.Config.Mode, strings.Join(fails, "; "), round(r.Wall))
	}
	committed := c.Enqueues[enqCommitted] + c.UnknownPresent
	dups := fmt.Sprintf("sent twice %d, copies unattributed %d, misattributed %d, held for an operator %d",
		len(c.Duplicates), len(c.Unattributed), len(c.Misattributed), len(c.Held))
	dl := "dead letters " + formatMap(c.DeadLettersByClass())
	if u := c.UnexpectedDeadLetters(); u > 0 {
		dl += fmt.Sprintf(" (%d unexpected)", u)
	}
	tail := ""
	if len(r.CheckErrors) > 0 {
		tail = "; " + strings.Join(r.CheckErrors, "; ")
	}
	if r.Config.Mode == ModeDelivery {
		goal := "goal met"
		if c.DeliveredShare() < r.Config.Goal {
			goal = fmt.Sprintf("goal %.1f%% missed", r.Config.Goal*100)
		}
		return fmt.Sprintf("delivery: %s %d messages, delivered %.2f%% (%d/%d, %s), %s, lost %d, %s, %s, wall %s (enqueue %s, then %s to %s)%s",
			word, committed, c.DeliveredShare()*100, c.ValidDelivered, c.ValidCommitted, goal, dups, c.LostCount(), dl,
			convergenceWord(r.Convergence, r.Config.bound()), round(r.Wall), round(r.Stream), round(r.Drain), settledWord(r.Settled), tail)
	}
	var faults int64
	for _, f := range r.Faults {
		faults += f.Total()
	}
	pg := "no PG restart"
	for _, x := range r.Restarts {
		pg = fmt.Sprintf("PG restart -m %s (%s down)", x.Mode, x.Downtime.Round(100*time.Millisecond))
	}
	pending := 0
	for _, n := range c.Pending {
		pending += n
	}
	fh := ""
	if f := r.FHIR; f != nil {
		faults += r.FHIRFaults.Total()
		fh = fmt.Sprintf("; FHIR %d observations committed, pushed %d, lost %d, duplicates at the EHR %d, pending %d",
			f.Recorded[enqCommitted], f.Pushed, f.LostCount(), len(f.Duplicates), sum(f.Pending))
	}
	return fmt.Sprintf("chaos: %s %d messages committed, lost %d, %s, %s, final %d, pending %d%s; %d SIGKILLs, %s, %d faulted provider requests, %s; %s; wall %s%s",
		word, committed, c.LostCount(), dups, dl, sum(c.ByStatus), pending, fh, len(r.Kills), pg, faults, outageWord(r.Outages),
		convergenceWord(r.Convergence, r.Config.bound()), round(r.Wall), tail)
}

// Report writes the run's details: the faults, every finding with its
// explanation, and the verdict as its last line.
func (r *Result) Report(w io.Writer) {
	c := r.Check
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("== %s run %s (seed %d) ==", r.Config.Mode, r.Run, r.Config.Seed)
	for _, e := range r.CheckErrors {
		p("CHECK       could not run: %s", e)
	}
	if c == nil {
		p("%s", r.Verdict())
		return
	}
	p("stream      %d messages in %s (%.1f/s); enqueue outcomes %s; unknown commits found present %d",
		r.Enqueued, round(r.Stream), float64(r.Enqueued)/max(r.Stream.Seconds(), 0.001), formatMap(c.Enqueues), c.UnknownPresent)
	p("drain       %s, %s", round(r.Drain), settledWord(r.Settled))
	p("kills       %d SIGKILLs of workers; %d sms_send jobs taken back by River's rescuer", len(r.Kills), c.Rescued)
	for _, k := range r.Kills {
		p("            %s %s (%d sms_send jobs running)", fmtOffset(k.At), k.Worker, k.RunningJobs)
	}
	for _, x := range r.Restarts {
		line := fmt.Sprintf("postgres    %s pg_ctl restart -m %s, %s without a connection", fmtOffset(x.At), x.Mode, x.Downtime.Round(time.Millisecond))
		if x.Err != "" {
			line += " (error: " + x.Err + ")"
		}
		p("%s", line)
	}
	for _, o := range r.Outages {
		p("outage      %s %s down for %s", fmtOffset(o.At), o.Provider, round(o.Length))
	}
	for _, name := range sortedKeys(r.Faults) {
		f := r.Faults[name]
		p("faults      %s: %d creates: %s", name, f.Creates, formatCounts(f.Create))
		p("            %s: %d reads: %s; outage 503s %d", name, f.Reads, formatCounts(f.Read), f.OutageRefused)
	}
	for _, name := range sortedKeys(r.UnexpectedExits) {
		p("exits       %s exited unasked %d times: %s", name, len(r.UnexpectedExits[name]), strings.Join(r.UnexpectedExits[name], "; "))
	}
	p("providers   copies accepted: %s; unattributed %d, misattributed %d", formatMap(c.ProviderCopies), len(c.Unattributed), len(c.Misattributed))
	p("final       %s", formatMap(c.ByStatus))
	p("delivered   %.2f%% of valid messages (%d/%d)", c.DeliveredShare()*100, c.ValidDelivered, c.ValidCommitted)
	for _, k := range sortedKeys(c.ValidNotDeliv) {
		p("            not delivered: %d %s", c.ValidNotDeliv[k], k)
	}
	for _, why := range sortedKeys(c.Pending) {
		p("pending     %d %s (e.g. message %v)", c.Pending[why], why, c.PendingExamples[why])
	}
	for _, why := range sortedKeys(c.Lost) {
		p("LOST        %d %s: %v", len(c.Lost[why]), why, firstN(c.Lost[why], 20))
	}
	for _, m := range c.Misattributed {
		p("MISSENT     %s", m)
	}
	for _, u := range c.Unattributed {
		p("UNATTRIB    %s", u)
	}
	for _, d := range c.Duplicates {
		p("DUPLICATE   message %d sent twice: %s; attempts %s", d.MessageID, d.Why, d.Attempts)
	}
	if len(c.Held) > 0 {
		p("held        %d messages held for an operator (reconciliation undecided; not lost, not resent): %v", len(c.Held), firstN(c.Held, 20))
	}
	byCause := map[string]int{}
	for _, d := range c.DeadLetters {
		mark := ""
		if !d.Expected {
			mark = "UNEXPECTED "
		}
		byCause[fmt.Sprintf("%s%s %s: %s", mark, d.Kind, d.Class, d.Why)]++
	}
	for _, k := range sortedKeys(byCause) {
		p("dead letter %d × %s", byCause[k], k)
	}
	if f := r.FHIR; f != nil {
		p("fhir        observations %s; pushed %d, refused as invalid %d; faults: %d writes: %s; %d reads: %s",
			formatMap(f.Recorded), f.Pushed, f.Invalid, r.FHIRFaults.Creates, formatCounts(r.FHIRFaults.Create), r.FHIRFaults.Reads, formatCounts(r.FHIRFaults.Read))
		for _, why := range sortedKeys(f.Pending) {
			p("fhir pend   %d %s", f.Pending[why], why)
		}
		for _, why := range sortedKeys(f.Lost) {
			p("FHIR LOST   %d %s: %v", len(f.Lost[why]), why, firstN(f.Lost[why], 20))
		}
		if len(f.Duplicates) > 0 {
			p("FHIR DUP    %d observations held more than once at the EHR: %v", len(f.Duplicates), firstN(f.Duplicates, 20))
		}
	}
	reportConvergence(p, r.Convergence, r.Config.bound())
	for _, f := range r.Failures() {
		p("FAILURE     %s", f)
	}
	if r.Dir != "" {
		p("kept        %s (process logs, cluster)", r.Dir)
	}
	p("%s", r.Verdict())
}

func settledWord(settled bool) string {
	if settled {
		return "all final"
	}
	return "drain bound reached with messages still pending"
}

func outageWord(o []Outage) string {
	if len(o) == 0 {
		return "no outage"
	}
	return fmt.Sprintf("%s outage %s", o[0].Provider, round(o[0].Length))
}

func formatMap[V int | int64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func firstN(ids []int64, n int) []int64 {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}

func round(d time.Duration) time.Duration { return d.Round(time.Second) }
