package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/switchboard-health/switchboard/db"
)

// ErrInvalidKey is returned (wrapped) by Limiter.Take for a key that is not
// destination:subkey as described in the package documentation.
var ErrInvalidKey = errors.New("invalid rate limit key")

// maxKeyLen is the longest key, in bytes; the SQL function allows 200
// characters.
const maxKeyLen = 200

var waitsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "switchboard_ratelimit_waits_total",
	Help: "Calls told to wait by a rate limit (the job snoozes instead of calling), by destination.",
}, []string{"destination"})

// Limiter takes slots from rate limits kept in PostgreSQL, shared by every
// process that uses the same database. It is safe for concurrent use.
type Limiter struct {
	pool    *pgxpool.Pool
	queries *db.Queries
}

// New returns a Limiter on pool. Each Take and Cleanup runs as one statement
// in its own transaction on the pool, never in a caller's transaction.
func New(pool *pgxpool.Pool) *Limiter {
	return &Limiter{pool: pool, queries: db.New()}
}

// Take asks for one slot for key under limit. It returns 0 when admitted, or
// how long to wait before asking again (the caller snoozes; it never sleeps).
// A wait records nothing, so asking again early is harmless, only wasteful.
//
// key is destination:subkey (see the package documentation). Take returns an
// error wrapping ErrInvalidKey or ErrInvalidLimit without touching the
// database, or a wrapped database error (including ctx's) if the statement
// fails; then nothing was admitted.
func (l *Limiter) Take(ctx context.Context, key string, limit Limit) (time.Duration, error) {
	dest, err := destination(key)
	if err != nil {
		return 0, err
	}
	if err := limit.Validate(); err != nil {
		return 0, err
	}
	iv, err := l.queries.RateLimitTake(ctx, l.pool, db.RateLimitTakeParams{
		Key:              key,
		EmissionInterval: pgtype.Interval{Microseconds: limit.Interval().Microseconds(), Valid: true},
		Burst:            int32(limit.Burst),
	})
	if err != nil {
		return 0, fmt.Errorf("error taking rate limit slot: %w", err)
	}
	wait, err := duration(iv)
	if err != nil {
		return 0, fmt.Errorf("error taking rate limit slot: %w", err)
	}
	if wait > 0 {
		waitsTotal.WithLabelValues(dest).Inc()
	}
	return wait, nil
}

// Cleanup deletes the state of every key idle for longer than idle and
// returns how many it deleted. Deleting idle state never lets a call through
// early; a longer idle only saves re-inserting rows of keys used now and
// then. It returns an error for a negative idle, or a wrapped database error.
func (l *Limiter) Cleanup(ctx context.Context, idle time.Duration) (int, error) {
	if idle < 0 {
		return 0, fmt.Errorf("rate limit cleanup: idle must not be negative, got %s", idle)
	}
	n, err := l.queries.RateLimitCleanup(ctx, l.pool, pgtype.Interval{Microseconds: idle.Microseconds(), Valid: true})
	if err != nil {
		return 0, fmt.Errorf("error cleaning up rate limits: %w", err)
	}
	return int(n), nil
}

// destination returns the part of key before its first ':' after checking
// the key's form.
func destination(key string) (string, error) {
	dest, sub, ok := strings.Cut(key, ":")
	switch {
	case !ok || sub == "":
		return "", fmt.Errorf("%w: want destination:subkey", ErrInvalidKey)
	case len(key) > maxKeyLen:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, maxKeyLen)
	case !validDestination(dest):
		// The destination is not echoed: a malformed key may hold anything.
		return "", fmt.Errorf("%w: destination must be a lowercase letter then up to 31 of a-z, 0-9, _ or -", ErrInvalidKey)
	}
	return dest, nil
}

func validDestination(s string) bool {
	if len(s) < 1 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// duration converts the wait the SQL function returns.
func duration(iv pgtype.Interval) (time.Duration, error) {
	if !iv.Valid {
		return 0, errors.New("rate limit wait is null")
	}
	if iv.Months != 0 || iv.Days < 0 || iv.Microseconds < 0 {
		return 0, fmt.Errorf("unexpected rate limit wait %+v", iv)
	}
	return time.Duration(iv.Days)*24*time.Hour + time.Duration(iv.Microseconds)*time.Microsecond, nil
}

// Reserve books the next slot for key under limit and returns how long to
// wait for it (0: go now). The caller snoozes that long and then proceeds
// without asking again: the slot is its own, so a backlog does not wake all
// at once for one slot. A slot further away than maxWait is not booked
// (booked false): ask again later. Errors as Take's.
func (l *Limiter) Reserve(ctx context.Context, key string, limit Limit, maxWait time.Duration) (wait time.Duration, booked bool, err error) {
	dest, err := destination(key)
	if err != nil {
		return 0, false, err
	}
	if err := limit.Validate(); err != nil {
		return 0, false, err
	}
	row, err := l.queries.RateLimitReserve(ctx, l.pool, db.RateLimitReserveParams{
		Key:              key,
		EmissionInterval: pgtype.Interval{Microseconds: limit.Interval().Microseconds(), Valid: true},
		Burst:            int32(limit.Burst),
		MaxWait:          pgtype.Interval{Microseconds: max(maxWait, 0).Microseconds(), Valid: true},
	})
	if err != nil {
		return 0, false, fmt.Errorf("error reserving rate limit slot: %w", err)
	}
	wait, err = duration(row.Wait)
	if err != nil {
		return 0, false, fmt.Errorf("error reserving rate limit slot: %w", err)
	}
	if wait > 0 {
		waitsTotal.WithLabelValues(dest).Inc()
	}
	return wait, row.Booked != nil && *row.Booked, nil
}

// Slots is one key's limit, for callers that book slots (internal/sms).
type Slots struct {
	l     *Limiter
	key   string
	limit Limit
}

// Slots returns key's limit as a slot booker.
func (l *Limiter) Slots(key string, limit Limit) *Slots { return &Slots{l: l, key: key, limit: limit} }

// Reserve is Limiter.Reserve for the key and limit of s.
func (s *Slots) Reserve(ctx context.Context, maxWait time.Duration) (time.Duration, bool, error) {
	return s.l.Reserve(ctx, s.key, s.limit, maxWait)
}
