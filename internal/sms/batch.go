package sms

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var batchJobs = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "switchboard_sms_batch_jobs",
	Help:    "sms_send jobs sharing one transaction, by phase (claim: attempts recorded before sending; result: provider ids recorded).",
	Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
}, []string{"phase"})

// observeBatches reports a group's batch sizes as phase.
func observeBatches(phase string) func(int) {
	h := batchJobs.WithLabelValues(phase)
	return func(n int) { h.Observe(float64(n)) }
}

// group runs calls in shared batches (group commit): a call joins the batch
// that is forming, at most lanes batches run at a time, and a lane that
// finishes one takes whatever formed meanwhile. An idle group runs nothing
// in the background; a lone call runs at once, as a batch of one, and a
// busy worker shares each transaction among as many jobs as arrived while
// the last one committed.
type group[Req, Res any] struct {
	run   func(ctx context.Context, reqs []Req) ([]Res, error)
	max   int           // most calls in one batch
	lanes int           // batches running at once
	limit time.Duration // bounds one batch
	// observe, when set, is told the size of every batch run.
	observe func(n int)

	mu      sync.Mutex
	forming []*groupCall[Req, Res]
	running int
}

type groupCall[Req, Res any] struct {
	req  Req
	res  Res
	err  error
	done chan struct{}
}

func newGroup[Req, Res any](maxBatch int, run func(context.Context, []Req) ([]Res, error)) *group[Req, Res] {
	return &group[Req, Res]{run: run, max: max(maxBatch, 1), lanes: 2, limit: 30 * time.Second}
}

// do runs req in the next batch and returns its result. If ctx ends first,
// do returns ctx's error and the batch may still commit req: callers treat
// that as a crash would be treated.
func (g *group[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := &groupCall[Req, Res]{req: req, done: make(chan struct{})}
	g.mu.Lock()
	g.forming = append(g.forming, c)
	if g.running < g.lanes {
		g.running++
		go g.lane()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

// lane runs batches until none is forming.
func (g *group[Req, Res]) lane() {
	for {
		g.mu.Lock()
		if len(g.forming) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		n := min(len(g.forming), g.max)
		batch := g.forming[:n:n]
		g.forming = g.forming[n:]
		g.mu.Unlock()
		g.runBatch(batch)
	}
}

func (g *group[Req, Res]) runBatch(batch []*groupCall[Req, Res]) {
	if g.observe != nil {
		g.observe(len(batch))
	}
	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	var (
		res []Res
		err error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in batch: %v", r)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), g.limit)
		defer cancel()
		res, err = g.run(ctx, reqs)
		if err == nil && len(res) != len(reqs) {
			err = fmt.Errorf("batch returned %d results for %d calls", len(res), len(reqs))
		}
	}()
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}
