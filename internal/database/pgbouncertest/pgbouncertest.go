// Package pgbouncertest starts a real PgBouncer in transaction pooling mode
// in front of a test database, the way most PostgreSQL shops run Switchboard
// in production.
//
// The binary is Debian's pgbouncer package: `make test` installs it on demand
// (deploy/pgbouncer/ensure.sh). A test that needs it fails, never skips, when
// it is missing, so a green run always means PgBouncer was exercised.
package pgbouncertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Binary finds the pgbouncer executable: on PATH, or where Debian puts it.
func Binary() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("pgbouncer not found: run `make test` (it installs Debian's pgbouncer package) or apt-get install pgbouncer")
}

// Start runs PgBouncer with pool_mode=transaction in front of the server in
// upstreamURL and returns upstreamURL rewritten to go through it (same user,
// database and query parameters). PgBouncer stops at cleanup.
func Start(tb testing.TB, upstreamURL string) string {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Fatal(err)
	}
	up, err := neturl.Parse(upstreamURL)
	if err != nil {
		tb.Fatalf("pgbouncertest: bad upstream URL: %v", err)
	}
	host, port := up.Hostname(), up.Port()
	if port == "" {
		port = "5432"
	}
	userName := up.User.Username()
	if userName == "" {
		userName = "postgres"
	}

	// PgBouncer refuses to run as root; as root it is started with -u and
	// its files must be readable by that user.
	dir, err := os.MkdirTemp("", "pgbouncertest-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		tb.Fatal(err)
	}
	var runAs []string
	if os.Geteuid() == 0 {
		u := "postgres"
		if _, err := user.Lookup(u); err != nil {
			tb.Fatalf("pgbouncertest: running as root needs a %q user to run pgbouncer as: %v", u, err)
		}
		runAs = []string{"-u", u}
	}

	var lastErr error
	for try := 0; try < 5; try++ {
		listen, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		ini := filepath.Join(dir, "pgbouncer.ini")
		users := filepath.Join(dir, "userlist.txt")
		conf := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
server_reset_query =
logfile = %s
`, host, port, listen, users, filepath.Join(dir, "pgbouncer.log"))
		if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(users, []byte(fmt.Sprintf("%q \"\"\n", userName)), 0o644); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, append(runAs, ini)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			tb.Fatalf("pgbouncertest: starting pgbouncer: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		through := *up
		through.Host = fmt.Sprintf("127.0.0.1:%d", listen)
		url := through.String()
		if err := waitReady(url, exited); err != nil {
			lastErr = err
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			continue
		}
		tb.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		return url
	}
	log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
	tb.Fatalf("pgbouncertest: pgbouncer did not come up: %v\n%s", lastErr, tail(string(log), 2000))
	return ""
}

// waitReady connects through PgBouncer until a query answers, or the process
// exits (a port taken in the meantime), or a generous bound passes.
func waitReady(url string, exited chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("pgbouncer exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			var one int
			err = conn.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
