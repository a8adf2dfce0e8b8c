package chaos

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FaultMix is the share of provider requests that fail, and how.
//
// Each create (send) request draws one fate: a 5xx (ServerError), a 429 with
// Retry-After (Throttle), a timeout (Timeout: the sandbox answers only after
// the client gave up), or none. AfterAccept is the part of the 5xx and of
// the timeouts that happen after the sandbox stored the message, as real
// providers do: the message will be sent, but the client cannot know. The
// rest happen before: the message is not stored. With Reads, list and fetch
// requests (reconciliation, status lookups, probes) draw the same 5xx, 429
// and timeout shares.
type FaultMix struct {
	ServerError float64
	Throttle    float64
	Timeout     float64
	AfterAccept float64
	Reads       bool
}

// IssueMix is the mix of issue 4's delivery-under-faults test: 20% 5xx, 10%
// 429, 5% timeouts, half of the 5xx and timeouts after acceptance.
var IssueMix = FaultMix{ServerError: 0.20, Throttle: 0.10, Timeout: 0.05, AfterAccept: 0.5, Reads: true}

// Validate reports a mix whose shares are out of range.
func (m FaultMix) Validate() error {
	for _, v := range []float64{m.ServerError, m.Throttle, m.Timeout, m.AfterAccept} {
		if v < 0 || v > 1 {
			return fmt.Errorf("fault shares must be between 0 and 1")
		}
	}
	if m.ServerError+m.Throttle+m.Timeout > 1 {
		return fmt.Errorf("5xx, 429 and timeout shares add up to more than 1")
	}
	return nil
}

// fate is what one request suffers.
type fate int

const (
	fatePass fate = iota
	fateServerError
	fateServerErrorAfterAccept
	fateThrottle
	fateTimeout
	fateTimeoutAfterAccept
	fateCount
)

var fateNames = [fateCount]string{"pass", "5xx_before_accept", "5xx_after_accept", "429", "timeout_before_accept", "timeout_after_accept"}

// FaultCounts is how many requests suffered each fault.
type FaultCounts struct {
	Creates, Reads int64
	// By fault, for creates and for reads (reads have no after_accept).
	Create map[string]int64
	Read   map[string]int64
	// OutageRefused counts requests answered 503 by the outage window.
	OutageRefused int64
}

// Total is the number of faulted requests, outage included.
func (c FaultCounts) Total() int64 {
	n := c.OutageRefused
	for k, v := range c.Create {
		if k != "pass" {
			n += v
		}
	}
	for k, v := range c.Read {
		if k != "pass" {
			n += v
		}
	}
	return n
}

// faulty wraps a sandbox provider's handler and makes requests fail by a
// FaultMix. The decision is made per request from a seeded generator.
type faulty struct {
	next     http.Handler
	isCreate func(*http.Request) bool
	// writeError answers an error with the provider's status and body shape.
	writeError func(w http.ResponseWriter, status int)
	// maxHang bounds a timeout fault when the client never gives up.
	maxHang time.Duration

	mu     sync.Mutex
	mix    FaultMix
	rng    *rand.Rand
	outage bool

	creates, reads atomic.Int64
	create, read   [fateCount]atomic.Int64
}

func newFaulty(next http.Handler, seed int64, isCreate func(*http.Request) bool, writeError func(http.ResponseWriter, int)) *faulty {
	return &faulty{
		next: next, isCreate: isCreate, writeError: writeError, maxHang: 30 * time.Second,
		rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0xc4a05)),
	}
}

// setMix replaces the fault mix; it takes effect at once.
func (f *faulty) setMix(m FaultMix) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mix = m
}

// setOutage marks an outage window: requests go straight to the sandbox,
// whose own Chaos answers them 503.
func (f *faulty) setOutage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = on
}

func (f *faulty) draw(create bool) fate {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.outage || (!create && !f.mix.Reads) {
		return fatePass
	}
	roll, after := f.rng.Float64(), f.rng.Float64() < f.mix.AfterAccept
	switch {
	case roll < f.mix.ServerError:
		if create && after {
			return fateServerErrorAfterAccept
		}
		return fateServerError
	case roll < f.mix.ServerError+f.mix.Throttle:
		return fateThrottle
	case roll < f.mix.ServerError+f.mix.Throttle+f.mix.Timeout:
		if create && after {
			return fateTimeoutAfterAccept
		}
		return fateTimeout
	}
	return fatePass
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	create := f.isCreate(r)
	fa := f.draw(create)
	if create {
		f.creates.Add(1)
		f.create[fa].Add(1)
	} else {
		f.reads.Add(1)
		f.read[fa].Add(1)
	}
	switch fa {
	case fatePass:
		f.next.ServeHTTP(w, r)
	case fateServerError:
		f.writeError(w, http.StatusInternalServerError)
	case fateThrottle:
		w.Header().Set("Retry-After", "1")
		f.writeError(w, http.StatusTooManyRequests)
	case fateTimeout:
		// Never handled: answer nothing until the client gives up.
		f.hang(r)
		panic(http.ErrAbortHandler)
	case fateServerErrorAfterAccept, fateTimeoutAfterAccept:
		rec := &recorder{header: http.Header{}}
		f.next.ServeHTTP(rec, r)
		if rec.status < 200 || rec.status > 299 {
			// Not accepted (a validation error, say): pass the answer on.
			rec.copyTo(w)
			return
		}
		if fa == fateServerErrorAfterAccept {
			f.writeError(w, http.StatusInternalServerError)
			return
		}
		f.hang(r)
		panic(http.ErrAbortHandler)
	}
}

// hang waits until the client gives up (or maxHang).
func (f *faulty) hang(r *http.Request) {
	t := time.NewTimer(f.maxHang)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

func (f *faulty) counts() FaultCounts {
	c := FaultCounts{Creates: f.creates.Load(), Reads: f.reads.Load(), Create: map[string]int64{}, Read: map[string]int64{}}
	for i := range fateCount {
		if n := f.create[i].Load(); n > 0 {
			c.Create[fateNames[i]] = n
		}
		if n := f.read[i].Load(); n > 0 {
			c.Read[fateNames[i]] = n
		}
	}
	return c
}

// recorder captures a handler's answer so it can be replaced.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(max(r.status, 200))
	_, _ = w.Write(r.body.Bytes())
}

// formatCounts renders fault counts as "name=n" pairs in a stable order.
func formatCounts(m map[string]int64) string {
	var b strings.Builder
	for _, name := range fateNames[1:] {
		if n := m[name]; n > 0 {
			if b.Len() > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s=%d", name, n)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
