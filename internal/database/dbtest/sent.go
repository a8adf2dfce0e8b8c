package dbtest

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sent is a pgx tracer that notes what a pool sends to the server: each
// batch (one round trip) with its statements, and how many statements went
// on their own.
type Sent struct {
	// Note, when set, is called as each batch is sent; the batch keeps
	// what it returns (say, how many requests a sandbox had received).
	Note func() int

	mu      sync.Mutex
	batches []SentBatch
	lones   int
}

// SentBatch is one batch a pool sent.
type SentBatch struct {
	SQL  []string
	Note int
}

// TracedPool opens a pool on url whose every statement s notes.
func TracedPool(tb testing.TB, url string, s *Sent) *pgxpool.Pool {
	tb.Helper()
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("error parsing %s: %v", url, err)
	}
	pc.ConnConfig.Tracer = s
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		tb.Fatalf("error opening traced pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// Seen returns the batches sent so far and how many statements went alone.
func (s *Sent) Seen() (batches []SentBatch, lones int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentBatch(nil), s.batches...), s.lones
}

// Reset forgets what was sent so far.
func (s *Sent) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches, s.lones = nil, 0
}

func (s *Sent) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	s.lones++
	s.mu.Unlock()
	return ctx
}

func (s *Sent) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *Sent) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	b := SentBatch{}
	if s.Note != nil {
		b.Note = s.Note()
	}
	for _, q := range d.Batch.QueuedQueries {
		b.SQL = append(b.SQL, q.SQL)
	}
	s.mu.Lock()
	s.batches = append(s.batches, b)
	s.mu.Unlock()
	return ctx
}

func (s *Sent) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (s *Sent) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
