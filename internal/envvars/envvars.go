// Package envvars reads the environment into configuration structs tagged
// for github.com/sethvargo/go-envconfig, reporting every bad or missing
// variable at once, each by its name (PUBLIC_BASE_URL), never by the Go
// field path (API: PublicBaseURL).
//
// go-envconfig stops at the first error. Load runs it again with each
// variable it has already reported hidden (so its default applies) until a
// run gets through, and names the variable each error came from: the last
// one go-envconfig looked up before failing.
//
// Adding a variable: add a field with an `env:"NAME, default=…"` tag to
// the configuration struct of the package that uses it; the commands load
// those structs through Load. Document it in README "Configuration".
package envvars

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Problem is one bad or missing variable.
type Problem struct {
	Var string
	Msg string
}

// Error lists every problem found, in the order the fields were read.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("configuration: ")
		b.WriteString(e.Problems[0].Var + ": " + e.Problems[0].Msg)
		return b.String()
	}
	fmt.Fprintf(&b, "configuration: %d environment variables are wrong:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.Var + ": " + p.Msg)
	}
	return b.String()
}

// Load reads the process environment into each of targets (pointers to
// structs). It returns *Error listing every problem.
func Load(ctx context.Context, targets ...any) error {
	return LoadFrom(ctx, envconfig.OsLookuper(), targets...)
}

// LoadFrom is Load with another source of variables.
func LoadFrom(ctx context.Context, l envconfig.Lookuper, targets ...any) error {
	var all []Problem
	for _, t := range targets {
		ps, err := load(ctx, l, t)
		if err != nil {
			return err
		}
		all = append(all, ps...)
	}
	if len(all) > 0 {
		return &Error{Problems: all}
	}
	return nil
}

// recorder remembers the last variable looked up and answers "not set"
// for the variables already reported (or a placeholder for a missing
// required one, so the run goes on past it).
type recorder struct {
	l           envconfig.Lookuper
	last        string
	hidden      map[string]bool
	placeholder map[string]bool
}

func (r *recorder) Lookup(key string) (string, bool) {
	r.last = key
	if r.placeholder[key] {
		return "placeholder", true
	}
	if r.hidden[key] {
		return "", false
	}
	return r.l.Lookup(key)
}

var fieldPath = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*: )+`)

func load(ctx context.Context, l envconfig.Lookuper, target any) ([]Problem, error) {
	rv := reflect.ValueOf(target)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("envvars: target must be a pointer to a struct, not %T", target)
	}
	r := &recorder{l: l, hidden: map[string]bool{}, placeholder: map[string]bool{}}
	var problems []Problem
	seen := map[string]bool{}
	for range 1000 {
		fresh := reflect.New(rv.Elem().Type())
		r.last = ""
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: fresh.Interface(), Lookuper: r})
		if err == nil {
			if len(problems) == 0 {
				rv.Elem().Set(fresh.Elem())
			}
			return problems, nil
		}
		key := r.last
		if key == "" || (r.hidden[key] && r.placeholder[key]) {
			// Not a variable's fault (a definition error), or no way past it.
			return problems, err
		}
		msg := fieldPath.ReplaceAllString(err.Error(), "")
		if errors.Is(err, envconfig.ErrMissingRequired) {
			msg = "is required and not set"
			r.placeholder[key] = true
		} else if r.hidden[key] {
			// Its default is bad too, or a placeholder does not decode.
			r.placeholder[key] = true
			continue
		}
		r.hidden[key] = true
		if !seen[key] {
			seen[key] = true
			problems = append(problems, Problem{Var: key, Msg: msg})
		}
	}
	return problems, errors.New("envvars: too many configuration errors")
}
