// Package httpserver runs Switchboard's HTTP servers and serves the probes
// every one of them mounts.
//
// Every server has read, write and idle timeouts and shuts down gracefully
// when its context ends: in-flight requests get ShutdownTimeout to finish.
// Probes serves /healthz and /readyz for both `switchboard api` and the
// worker's WORKER_ADDR server; Metrics serves /metrics on each process's
// own metrics listener.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults of Config, used for every zero field.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 20 * time.Second
)

// Config holds a server's timeouts. Zero fields take the Default* constants,
// so the zero Config is ready to use.
type Config struct {
	// ReadHeaderTimeout bounds reading the request line and headers.
	ReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT, default=5s"`
	// ReadTimeout bounds reading the whole request, body included.
	ReadTimeout time.Duration `env:"HTTP_READ_TIMEOUT, default=30s"`
	// WriteTimeout bounds the time from the end of the headers to the end
	// of the response.
	WriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT, default=60s"`
	// IdleTimeout closes keep-alive connections idle for that long.
	IdleTimeout time.Duration `env:"HTTP_IDLE_TIMEOUT, default=120s"`
	// ShutdownTimeout is how long in-flight requests get to finish once the
	// server's context ends; connections still open then are closed.
	ShutdownTimeout time.Duration `env:"HTTP_SHUTDOWN_TIMEOUT, default=20s"`
}

func (c Config) withDefaults() Config {
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Serve serves h on addr with the default timeouts until ctx ends, then
// shuts down gracefully. It returns nil after a clean shutdown, and an error
// when addr cannot be listened on, when serving fails, or when in-flight
// requests outlast the shutdown deadline.
func Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	return Config{}.Serve(ctx, addr, h, logger)
}

// ServeListener is Serve on a listener the caller opened (tests use port 0).
// The listener is closed when it returns.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	return Config{}.ServeListener(ctx, ln, h, logger)
}

// Serve is the package-level Serve with c's timeouts.
func (c Config) Serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	// Listen even when ctx has just ended, so that Serve always ends with
	// the same graceful shutdown.
	var lc net.ListenConfig
	ln, err := lc.Listen(context.WithoutCancel(ctx), "tcp", addr)
	if err != nil {
		return fmt.Errorf("error listening on %s: %w", addr, err)
	}
	return c.ServeListener(ctx, ln, h, logger)
}

// ServeListener is the package-level ServeListener with c's timeouts.
func (c Config) ServeListener(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	c = c.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests keep ctx's values but not its cancellation: the end of
		// ctx starts a graceful shutdown, it must not abort requests that
		// are about to commit.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.InfoContext(ctx, "http server listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		return fmt.Errorf("error serving http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	logger.InfoContext(ctx, "http server shutting down", slog.String("addr", ln.Addr().String()))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("error shutting down http server: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("error serving http on %s: %w", ln.Addr(), err)
	}
	return nil
}
