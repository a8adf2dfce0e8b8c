package logging

import (
	"context"
	"log/slog"
)

// Library returns a logger for a library's own routine lines (River's
// "producer job counts", elector and maintenance chatter, about half of all
// lines at INFO): its INFO records are written at DEBUG, so LOG_LEVEL=debug
// shows them and the default info level does not. Its warnings and errors
// are unchanged.
func Library(l *slog.Logger) *slog.Logger {
	return slog.New(demoted{l.Handler()})
}

type demoted struct{ h slog.Handler }

func (d demoted) Enabled(ctx context.Context, level slog.Level) bool {
	return d.h.Enabled(ctx, demote(level))
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(attrs []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(attrs)} }
func (d demoted) WithGroup(name string) slog.Handler       { return demoted{d.h.WithGroup(name)} }

func demote(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}
