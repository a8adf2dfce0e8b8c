package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// readmeNotRun are README commands the README test parses (flags, enums,
// Validate) but does not run, with the reason. Everything else is run.
var readmeNotRun = map[string]string{
	"worker":      "long-running server; its start is tested in internal/worker and the compose boot test",
	"api":         "long-running server; tested in internal/api and the compose boot test",
	"dev":         "long-running demo (make run)",
	"chaos":       "minutes-long fault suite with its own cluster (make chaos; internal/chaos tests a reduced run)",
	"bench":       "minutes-long benchmark (make bench; TestBench runs tiny scenarios)",
	"healthcheck": "needs a running server; TestHealthcheck runs it against one",
	"reencrypt":   "needs TOKEN_ENCRYPTION_KEYS; tested in internal/secrets",
	"ehr":         "needs a FHIR peer; TestEHRCommands runs every ehr subcommand against one",
	"wearables":   "tested in internal/wearables and TestEveryCommandsConfigurationLoadsWithDefaults",
}

// readmeCommands returns every `switchboard …` command the README shows: the
// lines of its code blocks and its inline code spans.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	var out []string
	inBlock := false
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock && strings.HasPrefix(trimmed, "switchboard ") {
			if i := strings.Index(trimmed, "#"); i > 0 {
				trimmed = trimmed[:i]
			}
			out = append(out, strings.TrimSpace(trimmed))
		}
	}
	for _, m := range regexp.MustCompile("`(switchboard [a-z][^`]*)`").FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// expand turns a synopsis ("dlq list [--state open]", "ehr add|list") into
// command lines; ok is false for one with placeholders (NAME, PORT), which
// is only checked for its command words.
func expand(cmd string) (lines [][]string, ok bool) {
	cmd = strings.NewReplacer("[", "", "]", "").Replace(cmd)
	words := strings.Fields(cmd)[1:]
	ok = true
	for _, w := range words {
		if regexp.MustCompile(`^[A-Z][A-Z_]*$|[A-Z]{3,}`).MatchString(w) {
			ok = false
		}
	}
	for i, w := range words {
		if strings.Contains(w, "|") && !strings.HasPrefix(w, "-") {
			for _, alt := range strings.Split(w, "|") {
				lines = append(lines, append(append(append([]string{}, words[:i]...), alt), words[i+1:]...))
			}
			return lines, false
		}
	}
	return [][]string{words}, ok
}

// parseOnly parses args as the binary would, without running them.
func parseOnly(args []string) (err error) {
	var c cli
	p, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exited); !ok {
				panic(r)
			}
			err = errHelp
		}
	}()
	_, err = p.Parse(args)
	return err
}

// TestREADMECommands: every command the README shows parses, and each one
// not in readmeNotRun runs against a real database with the dead letters
// and destinations its examples name.
func TestREADMECommands(t *testing.T) {
	cmds := readmeCommands(t)
	require.NotEmpty(t, cmds)

	url := dbtest.NewDatabase(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("SWITCHBOARD_ACTOR", "readme@test")
	t.Setenv("LOG_FORMAT", "json")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	// The README's examples name dead letters 17, 18 and 19.
	_, err = conn.Exec(ctx, `INSERT INTO switchboard.dead_letters (id, job_id, kind, queue, args, attempts, max_attempts, class, job_state)
		OVERRIDING SYSTEM VALUE
		SELECT i, 1000 + i, 'sms_send', 'sms', '{}', 10, 10, 'retries_exhausted', 'discarded' FROM generate_series(17, 19) i`)
	require.NoError(t, err)

	ran := 0
	for _, cmd := range cmds {
		lines, runnable := expand(cmd)
		for _, args := range lines {
			if !runnable {
				// A synopsis: its command words must exist.
				words := []string{}
				for _, a := range args {
					if strings.HasPrefix(a, "-") || regexp.MustCompile(`[A-Z]{2,}|[/:0-9]`).MatchString(a) {
						break
					}
					words = append(words, a)
				}
				require.ErrorIs(t, parseOnly(append(words, "--help")), errHelp, "README: %s", cmd)
				continue
			}
			if err := parseOnly(args); err != nil {
				require.ErrorIs(t, err, errHelp, "README command does not parse: %s", cmd)
			}
			if _, skip := readmeNotRun[args[0]]; skip {
				continue
			}
			out, err := runCLI(t, args...)
			require.NoError(t, err, "README command fails: %s\n%s", cmd, out)
			ran++
		}
	}
	require.Positive(t, ran)
	t.Logf("%d README commands, %d run", len(cmds), ran)
}

// TestREADMEMakeTargets: every `make TARGET` the README shows is a target of
// the Makefile that `make help` lists (a "## " description).
func TestREADMEMakeTargets(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	makefile, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-zA-Z0-9_/-]+):.*## `).FindAllStringSubmatch(string(makefile), -1) {
		targets[m[1]] = true
	}
	named := regexp.MustCompile("(?m)(?:`|^\\s*)make ([a-z][a-z0-9_/-]*)").FindAllStringSubmatch(string(readme), -1)
	require.NotEmpty(t, named)
	for _, m := range named {
		require.True(t, targets[m[1]], "README names `make %s`, which is not a documented Makefile target", m[1])
	}
}
