package bench

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Latencies collects durations from many goroutines.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Merge appends every duration of o.
func (l *Latencies) Merge(o *Latencies) {
	o.mu.Lock()
	d := slices.Clone(o.d)
	o.mu.Unlock()
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

// Summary sorts what was recorded and returns its percentiles.
func (l *Latencies) Summary() Summary {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	return Summarize(d)
}

// Summary is the distribution of a set of durations, in milliseconds.
type Summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Summarize returns the percentiles of d (nearest rank); d is sorted in place.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		i = max(0, min(i, len(d)-1))
		return ms(d[i])
	}
	return Summary{N: len(d), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ms(d[len(d)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// spanRate is the steady rate of a set of completion times: the middle 80%
// of them divided by the time they took, so that start-up and the tail of a
// drain do not count. It returns 0 for fewer than 10 times.
func spanRate(times []time.Time) float64 {
	if len(times) < 10 {
		return 0
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := len(times)/10, len(times)*9/10
	span := times[hi].Sub(times[lo])
	if span <= 0 {
		return 0
	}
	return float64(hi-lo) / span.Seconds()
}

// resetPeakRSS resets this process's peak resident set size (VmHWM), so
// that the next peakRSS reports the peak of one scenario. It reports false
// when the kernel does not allow it; the peak is then the process's.
// What the previous case left is collected and returned to the system
// first.
func resetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns this process's peak resident set size in bytes (VmHWM),
// or 0 when /proc is not there.
func peakRSS() int64 { return processPeakRSS("self") }

// processPeakRSS returns the peak resident set size of process pid ("self"
// or a number) in bytes, or 0 when it cannot be read. For a child it must
// be read before the child exits: rusage's maxrss of a child started by Go
// also counts the parent's peak (the child shares the parent's memory
// until it execs).
func processPeakRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
