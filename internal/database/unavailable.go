package database

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err says the server could not be reached or
// went away — a dial that failed, a connection reset or closed under a
// statement, a server starting, shutting down or recovering (SQLSTATE
// 57P01-57P03, class 08) — as opposed to an answer that trying again
// cannot change (a syntax error, a constraint, a bad password, a
// configuration mistake). Only the first is worth waiting for.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exception
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// WhileUnavailable runs fn, and runs it again while it fails because the
// server is unavailable (Unavailable), for at most wait in all; it returns
// fn's last error. A service's start-up reads use it with the wait Open
// gave the server: a PostgreSQL that restarts just after Open reached it
// is waited for as Open would have waited, instead of ending the process.
func WhileUnavailable(ctx context.Context, wait time.Duration, fn func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	for {
		err := fn(ctx)
		if !Unavailable(err) || !time.Now().Before(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
