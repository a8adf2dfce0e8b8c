package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// Step is one query of a pipeline: it calls one sqlc query on q and keeps
// what it returns. A pipeline calls each step twice: first to learn its
// query (q then answers nothing: no rows, and a row whose Scan fails), then
// with the query's results, so a step must call exactly one query and keep
// only what its second call gives.
type Step func(q db.DBTX) error

// Pipe is a transaction whose statements go to the server in pipelines:
// each Send is one round trip however many statements it carries; BEGIN
// goes with the first, COMMIT with the last. Statements of one Send run in
// order, each with its own snapshot (as if sent one by one), so a lock taken
// by one is held when the next runs.
type Pipe struct {
	conn    *pgxpool.Conn
	generic bool
	begun   bool
	ended   bool
}

// PipeOption sets how a pipelined transaction runs.
type PipeOption func(*Pipe)

// GenericPlans makes the transaction's prepared statements run on their
// generic plans (plan_cache_mode = force_generic_plan, for this transaction
// only). For small keyed statements whose parameters are arrays,
// PostgreSQL otherwise plans them anew on every call: a custom plan for an
// array of two ids always looks cheaper than the generic one for an array
// of unknown length, though both are the same index scans. Use it only
// where the generic plans have been checked.
func GenericPlans() PipeOption { return func(p *Pipe) { p.generic = true } }

// InPipe runs fn in a pipelined transaction on a connection of pool: fn
// sends its statements with p.Send, and the last ones with p.Commit; if fn
// returns nil without committing, the transaction is committed alone. Any
// error rolls it back (a connection left in a transaction is never
// returned to the pool).
func InPipe(ctx context.Context, pool *pgxpool.Pool, fn func(p *Pipe) error, opts ...PipeOption) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	p := &Pipe{conn: conn}
	for _, o := range opts {
		o(p)
	}
	if err := fn(p); err != nil {
		p.rollback(ctx)
		return err
	}
	if p.ended {
		return nil
	}
	if err := p.Commit(ctx); err != nil {
		p.rollback(ctx)
		return err
	}
	return nil
}

// Send runs steps in one round trip, inside the transaction.
func (p *Pipe) Send(ctx context.Context, steps ...Step) error {
	return p.send(ctx, false, steps)
}

// Commit runs steps and COMMIT in one round trip: the transaction ends.
func (p *Pipe) Commit(ctx context.Context, steps ...Step) error {
	return p.send(ctx, true, steps)
}

func (p *Pipe) send(ctx context.Context, commit bool, steps []Step) error {
	if p.ended {
		return errors.New("pipelined transaction already ended")
	}
	b := &pgx.Batch{}
	begin := !p.begun
	if begin {
		b.Queue("begin")
		if p.generic {
			b.Queue("set local plan_cache_mode = force_generic_plan")
		}
	}
	for i, s := range steps {
		rec := &recorder{}
		_ = s(rec) // answers nothing: its error is the recording's
		if len(rec.queries) != 1 {
			return fmt.Errorf("pipeline step %d ran %d queries, not one", i, len(rec.queries))
		}
		b.Queue(rec.queries[0].sql, rec.queries[0].args...)
	}
	if commit {
		b.Queue("commit")
	}
	if b.Len() == 0 {
		return nil
	}
	p.begun = true
	br := p.conn.SendBatch(ctx, b)
	err := func() error {
		if begin {
			if _, err := br.Exec(); err != nil {
				return err
			}
			if p.generic {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
		}
		for _, s := range steps {
			if err := s(replay{br}); err != nil {
				return err
			}
		}
		if commit {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && commit {
		p.ended = true
	}
	return err
}

func (p *Pipe) rollback(ctx context.Context) {
	if !p.begun || p.ended {
		return
	}
	p.ended = true
	// A connection whose rollback fails is not idle, and Release closes it.
	_, _ = p.conn.Exec(context.WithoutCancel(ctx), "rollback")
}

type recorded struct {
	sql  string
	args []any
}

// recorder notes the query a step runs and answers nothing.
type recorder struct{ queries []recorded }

var errRecording = errors.New("pipeline: recording the step's query")

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.queries = append(r.queries, recorded{sql, args})
	return pgconn.CommandTag{}, nil
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.queries = append(r.queries, recorded{sql, args})
	return noRows{}, nil
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.queries = append(r.queries, recorded{sql, args})
	return noRow{}
}

// replay hands a step its query's results, in the order queued.
type replay struct{ br pgx.BatchResults }

func (r replay) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return r.br.Exec()
}

func (r replay) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return r.br.Query()
}

func (r replay) QueryRow(context.Context, string, ...any) pgx.Row {
	return r.br.QueryRow()
}

type noRow struct{}

func (noRow) Scan(...any) error { return errRecording }

type noRows struct{}

func (noRows) Close()                                       {}
func (noRows) Err() error                                   { return nil }
func (noRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (noRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (noRows) Next() bool                                   { return false }
func (noRows) Scan(...any) error                            { return errRecording }
func (noRows) Values() ([]any, error)                       { return nil, errRecording }
func (noRows) RawValues() [][]byte                          { return nil }
func (noRows) Conn() *pgx.Conn                              { return nil }
func (noRows) TypeMap() *pgtype.Map                         { return nil }

// Steps sends a transaction's statements: Send now, Last as its final ones.
// A Pipe is one (Last goes with its COMMIT); OnTx runs them on a pgx.Tx one
// by one. Code that writes its statements as Steps runs either way.
type Steps interface {
	Send(ctx context.Context, steps ...Step) error
	Last(ctx context.Context, steps ...Step) error
}

// Last is Commit: the pipe's final statements go with its COMMIT.
func (p *Pipe) Last(ctx context.Context, steps ...Step) error { return p.Commit(ctx, steps...) }

// OnTx runs steps on tx, one statement at a time; the caller commits tx.
func OnTx(tx pgx.Tx) Steps { return txSteps{tx} }

type txSteps struct{ tx pgx.Tx }

func (t txSteps) Send(_ context.Context, steps ...Step) error {
	for _, s := range steps {
		if err := s(t.tx); err != nil {
			return err
		}
	}
	return nil
}

func (t txSteps) Last(ctx context.Context, steps ...Step) error { return t.Send(ctx, steps...) }
