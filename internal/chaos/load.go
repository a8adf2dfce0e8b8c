package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kinds of message the stream sends, and what each must end as.
const (
	kindValid = "valid" // delivered (or a provider's final undelivered/failed)
	// Magic recipients of the sandboxes (the same numbers on both).
	kindInvalid   = "invalid"   // 21211 / 10002: failed, invalid_number, no dead letter
	kindOptedOut  = "opted_out" // 21610 / 40300: blocked_opted_out, no dead letter
	kindPermanent = "permanent" // 21408 (our account lacks the region): a dead letter of class permanent
)

var magicTo = map[string]string{
	kindInvalid:   "+15005550001",
	kindOptedOut:  "+15005550004",
	kindPermanent: "+15005550003",
}

// Enqueue states, as the app saw them.
const (
	enqCommitted = "committed" // send_sms returned and COMMIT succeeded
	enqUnknown   = "unknown"   // COMMIT failed: the app cannot know (the row may exist)
	enqFailed    = "failed"    // never committed: an error before COMMIT on every try
)

// enqueue is one message of the stream as the client side saw it.
type enqueue struct {
	n       int
	key     string
	kind    string
	to      string
	body    string
	state   string
	id      int64 // message id returned by send_sms
	tries   int
	lastErr string
}

// stream enqueues messages through switchboard.send_sms, one transaction
// each, the way an app does; it retries a message whose transaction failed
// with the same idempotency key, as the contract allows.
type stream struct {
	pool          *pgxpool.Pool
	run           string
	negativeShare float64
	retryFor      time.Duration

	mu    sync.Mutex
	rng   *rand.Rand
	items []*enqueue
}

func newStream(pool *pgxpool.Pool, run string, seed int64, negativeShare float64) *stream {
	return &stream{
		pool: pool, run: run, negativeShare: negativeShare, retryFor: 90 * time.Second,
		rng: rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x5e4d)),
	}
}

// keyPrefix is the idempotency-key prefix of this run's messages.
func (s *stream) keyPrefix() string { return "chaos-" + s.run + "-" }

// areaCodes give distinct fictional (555) numbers to up to 120,000
// messages; each recipient gets few messages, so reconciliation (which
// lists a recipient's recent messages) always sees the one it looks for.
var areaCodes = []int{415, 212, 312, 617, 206, 303, 512, 404, 305, 702, 503, 919}

func (s *stream) next() *enqueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.items) + 1
	e := &enqueue{n: n, key: fmt.Sprintf("%s%06d", s.keyPrefix(), n), kind: kindValid}
	if s.negativeShare > 0 && s.rng.Float64() < s.negativeShare {
		e.kind = []string{kindInvalid, kindOptedOut, kindPermanent}[s.rng.IntN(3)]
		e.to = magicTo[e.kind]
	} else {
		e.to = fmt.Sprintf("+1%03d555%04d", areaCodes[(n/10000)%len(areaCodes)], n%10000)
	}
	// Unique bodies: a provider copy is traced to its message by body too.
	e.body = fmt.Sprintf("Switchboard chaos %s #%d: your appointment is tomorrow at 9:00.", s.run, n)
	s.items = append(s.items, e)
	return e
}

// runFor enqueues at rate per second until count messages (0: no limit)
// or until ctx ends, with at most inflight transactions at once. It
// returns when every started enqueue has settled.
func (s *stream) runFor(ctx context.Context, rate float64, count int, inflight int) {
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		e := s.next()
		wg.Go(func() {
			defer func() { <-sem }()
			s.enqueueOne(e)
		})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// enqueueOne runs one app transaction, retrying it with the same key while
// the database is unreachable (a restart), for up to retryFor.
func (s *stream) enqueueOne(e *enqueue) {
	deadline := time.Now().Add(s.retryFor)
	backoff := 100 * time.Millisecond
	for {
		s.mu.Lock()
		e.tries++
		state := e.state
		s.mu.Unlock()
		id, committedUnknown, err := s.tx(e)
		switch {
		case err == nil:
			s.set(e, enqCommitted, id, "")
			return
		case committedUnknown:
			s.set(e, enqUnknown, 0, err.Error())
		case state != enqUnknown:
			// Once a COMMIT failed, a later error before COMMIT does not
			// make the message certainly absent.
			s.set(e, enqFailed, 0, err.Error())
		}
		if isUserError(err) || time.Now().After(deadline) {
			return
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
}

// tx is the app's transaction: send_sms, then COMMIT. committedUnknown is
// true when COMMIT itself failed, so the transaction may have committed.
func (s *stream) tx(e *enqueue) (id int64, committedUnknown bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	if err := tx.QueryRow(ctx, "SELECT switchboard.send_sms($1, $2, $3, $4)",
		e.key, e.to, e.body, fmt.Sprintf("chaos-patient-%d", e.n%500)).Scan(&id); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, true, err
	}
	return id, false, nil
}

func (s *stream) set(e *enqueue, state string, id int64, errText string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.state, e.id = state, id
	if errText != "" {
		e.lastErr = errText
	}
}

// snapshot returns copies of every enqueue so far.
func (s *stream) snapshot() []enqueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]enqueue, len(s.items))
	for i, e := range s.items {
		out[i] = *e
	}
	return out
}

// counts returns how many enqueues are in each state.
func (s *stream) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{}
	for _, e := range s.items {
		c[cmp.Or(e.state, "in_flight")]++
	}
	return c
}

// isUserError reports an error of the SQL API's input checks: retrying
// cannot help.
func isUserError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22023" || pgErr.Code == "23505")
}
