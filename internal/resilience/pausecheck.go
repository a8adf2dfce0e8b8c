package resilience

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// pauseReads makes a pause committed before a job starts hold that job:
// every job start needs a read of the paused destinations that began after
// it. Jobs starting together share one read (a read that began after a
// job's start serves it), so the cost is one small query per wave of job
// starts, not one per job.
type pauseReads struct {
	mu       sync.Mutex
	inflight *pauseRead
	fresh    time.Time // start of the newest completed read
}

type pauseRead struct {
	start time.Time
	done  chan struct{}
	err   error
}

// refreshPauses returns once a read of the paused destinations that began
// at or after since has been applied to every destination.
func (r *Registry) refreshPauses(ctx context.Context, since time.Time) error {
	for {
		r.pauses.mu.Lock()
		if !r.pauses.fresh.Before(since) {
			r.pauses.mu.Unlock()
			return nil
		}
		if cur := r.pauses.inflight; cur != nil {
			r.pauses.mu.Unlock()
			select {
			case <-cur.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !cur.start.Before(since) && cur.err != nil {
				return cur.err
			}
			continue
		}
		read := &pauseRead{start: time.Now(), done: make(chan struct{})}
		r.pauses.inflight = read
		r.pauses.mu.Unlock()

		read.err = r.readPauses(ctx)

		r.pauses.mu.Lock()
		if read.err == nil && read.start.After(r.pauses.fresh) {
			r.pauses.fresh = read.start
		}
		r.pauses.inflight = nil
		r.pauses.mu.Unlock()
		close(read.done)
		if read.err != nil {
			return read.err
		}
	}
}

// readPauses reads the paused destinations and applies them.
func (r *Registry) readPauses(ctx context.Context) error {
	paused, err := r.store.Paused(ctx)
	if err != nil {
		return fmt.Errorf("error reading paused destinations: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, d := range r.dests {
		d.paused.Store(paused[name])
	}
	return nil
}

// Hook returns the River hook that runs before every job: it clears the
// previous run's hold from the job's metadata and makes the job see every
// pause committed before it started. Install it with the client's Hooks.
func (r *Registry) Hook() rivertype.Hook {
	return river.HookWorkBeginFunc(func(ctx context.Context, job *rivertype.JobRow) error {
		clearHold(ctx, job)
		if r.store == nil {
			return nil
		}
		return r.refreshPauses(ctx, time.Now())
	})
}
