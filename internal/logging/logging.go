// Package logging builds Switchboard's slog logger: tint for a terminal, JSON
// otherwise. Log lines carry ids and codes, never names, phone numbers,
// message bodies or clinical values.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// Config is read from LOG_LEVEL and LOG_FORMAT.
type Config struct {
	Level  string `env:"LOG_LEVEL, default=info"`
	Format string `env:"LOG_FORMAT"` // text (tint) or json; empty: text on a terminal
}

// New returns a logger writing to w. It returns an error for an unknown level
// or format.
func New(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToLower(cfg.Level))); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q is not one of debug, info, warn, error", cfg.Level)
	}
	format := strings.ToLower(cfg.Format)
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(tint.NewHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly})), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	default:
		return nil, fmt.Errorf("LOG_FORMAT %q is not text or json", cfg.Format)
	}
}
