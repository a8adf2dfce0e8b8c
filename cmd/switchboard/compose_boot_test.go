package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// composeEnv is the environment docker compose gives a service: its
// env_file entries in order (a later file overrides an earlier one; an
// optional file that does not exist is skipped), then its environment map.
// Values are read as compose reads them: KEY=value, surrounding single or
// double quotes removed, "#" lines ignored.
func composeEnv(t *testing.T, s composeService) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range s.EnvFile {
		f, err := os.Open(filepath.Join(repoRoot, ef.Path))
		if os.IsNotExist(err) && ef.Required != nil && !*ef.Required {
			continue
		}
		require.NoError(t, err, "env_file %s", ef.Path)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q is not KEY=value", ef.Path, line)
			if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			env[k] = v
		}
		require.NoError(t, sc.Err())
		f.Close()
	}
	for k, v := range s.Environment {
		env[k] = v
	}
	return env
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// emptyDatabase creates an unmigrated database on TEST_DATABASE_URL's server,
// dropped at cleanup: the compose file's migrate service is what migrates it.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	admin := dbtest.AdminURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "sbboot_" + hex.EncodeToString(rnd[:])
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("error connecting to drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	url, err := rewriteTestDatabase(admin, name)
	require.NoError(t, err)
	return url
}

func rewriteTestDatabase(admin, name string) (string, error) {
	i := strings.LastIndex(admin, "/")
	if i < 0 {
		return "", fmt.Errorf("TEST_DATABASE_URL has no database name")
	}
	rest := admin[i+1:]
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		return admin[:i+1] + name + rest[q:], nil
	}
	return admin[:i+1] + name, nil
}

// TestMain runs the program itself when the test binary is started under
// the name "switchboard" (TestComposeServicesBoot links it so): the boot test
// runs the real main with exactly the compose environment, without a second
// build of the program.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "switchboard" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildBinary returns this test binary under the name switchboard.
func buildBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "switchboard")
	require.NoError(t, os.Symlink(self, bin))
	return bin
}

// lockedBuffer collects a process's output for the failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// TestComposeServicesBoot runs what `docker compose up` runs, without
// Docker: the real binary with each service's command and exactly the
// environment the compose file gives it (deploy/.env.example, as a user
// copies it), except two things a container gets from Docker's network:
// DATABASE_URL points at a fresh database on the test cluster instead of
// the postgres service, and API_ADDR/WORKER_ADDR (and the metrics addresses)
// listen on free loopback
// ports. migrate must exit 0; api and worker must become ready (/readyz 200)
// and keep running — no crash loop on the example's placeholders.
func TestComposeServicesBoot(t *testing.T) {
	services := loadCompose(t)
	dbURL := emptyDatabase(t)
	bin := buildBinary(t)

	envFor := func(name string) map[string]string {
		env := composeEnv(t, services[name])
		require.Contains(t, env["DATABASE_URL"], "@postgres:5432/", "%s talks to the compose postgres service", name)
		env["DATABASE_URL"] = dbURL
		return env
	}

	// migrate: one-shot, must succeed.
	{
		s := services["migrate"]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, s.Command...)
		cmd.Env = envList(envFor("migrate"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "migrate exited non-zero:\n%s", out)
	}

	type proc struct {
		name, addr string
		out        *lockedBuffer
		done       chan error
	}
	var procs []*proc
	for _, sv := range []struct{ name, addrVar string }{{"api", "API_ADDR"}, {"worker", "WORKER_ADDR"}} {
		s := services[sv.name]
		env := envFor(sv.name)
		require.NotEmpty(t, env[sv.addrVar], "%s: %s is set", sv.name, sv.addrVar)
		addr := freeAddr(t)
		env[sv.addrVar] = addr
		// The metrics listeners too: a shared test machine may have 9090 taken.
		for _, k := range []string{"API_METRICS_ADDR", "WORKER_METRICS_ADDR"} {
			if env[k] != "" {
				env[k] = freeAddr(t)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, s.Command...)
		cmd.Env = envList(env)
		p := &proc{name: sv.name, addr: addr, out: &lockedBuffer{}, done: make(chan error, 1)}
		cmd.Stdout, cmd.Stderr = p.out, p.out
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 30 * time.Second
		require.NoError(t, cmd.Start())
		go func() { p.done <- cmd.Wait() }()
		t.Cleanup(func() {
			cancel()
			<-p.done
		})
		procs = append(procs, p)
	}

	for _, p := range procs {
		waitReady(t, p.name, "http://"+p.addr+"/readyz", p.out, p.done)
	}

	// The example sets no OPERATOR_PASSWORD_HASH: River UI answers 503 as
	// documented, it does not stop the api.
	resp, err := http.Get("http://" + procs[0].addr + "/riverui/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "River UI without an operator password hash")

	// The worker reports the placeholder provider as unconfigured instead of
	// exiting.
	require.Eventually(t, func() bool { return strings.Contains(procs[1].out.String(), "unconfigured") },
		30*time.Second, 50*time.Millisecond, "worker log names the unconfigured provider:\n%s", procs[1].out.String())
	for _, p := range procs {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited (%v):\n%s", p.name, err, p.out.String())
		default:
		}
	}
}

// waitReady polls url until it answers 200, failing at once if the process
// exits first. The bound is generous: it only matters when the service
// never becomes ready.
func waitReady(t *testing.T, name, url string, out *lockedBuffer, done chan error) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("%s exited before it became ready (%v):\n%s", name, err, out.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after 90s:\n%s", name, url, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
