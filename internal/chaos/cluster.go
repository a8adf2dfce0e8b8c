package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL cluster in a directory of its own, on a
// random free loopback port. It is made for one run and removed after it, so
// a run may restart it without touching any server someone else uses.
//
// initdb and pg_ctl refuse to run as root; when the process is root they run
// as the postgres user (runuser), which then owns the cluster's directory.
type Cluster struct {
	dir    string // owned by the cluster's user: data/, the socket, the log
	data   string
	log    string
	port   int
	pgCtl  string
	asUser string // "" or "postgres"
}

// Database is the name of the database StartCluster creates.
const Database = "switchboard"

// StartCluster creates a cluster under dir (which must not exist yet),
// starts it and creates the database Database. It returns an error naming
// what is missing when the PostgreSQL server binaries cannot be found or
// the cluster cannot be made; it never falls back to another server.
func StartCluster(ctx context.Context, dir string) (*Cluster, error) {
	initdb, pgCtl, err := findServerBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log"), pgCtl: pgCtl}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("error creating cluster directory: %w", err)
	}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
		if err := c.giveToPostgres(); err != nil {
			return nil, err
		}
	}
	if out, err := c.command(ctx, initdb, "-D", c.data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("error running initdb: %w: %s", err, lastLine(out))
	}
	// A free port can be taken between our probe and the server's bind:
	// try a few.
	for try := 0; ; try++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = c.writeConfig(); err != nil {
			return nil, err
		}
		if err = c.pgctl(ctx, "start", "-l", c.log); err == nil {
			break
		}
		if try == 2 {
			return nil, err
		}
	}
	if err := c.createDatabase(ctx); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	return c, nil
}

// URL is the database's URL (superuser postgres, trust auth, loopback).
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, Database)
}

// Port is the port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return c.log }

// Restart restarts the server with pg_ctl restart -m mode ("fast": clean
// shutdown; "immediate": no shutdown checkpoint, crash recovery at start)
// and waits until it accepts connections again. Every client connection is
// cut. It returns how long the database did not answer.
func (c *Cluster) Restart(ctx context.Context, mode string) (time.Duration, error) {
	if mode != "fast" && mode != "immediate" && mode != "smart" {
		return 0, fmt.Errorf("unknown shutdown mode %q", mode)
	}
	start := time.Now()
	if err := c.pgctl(ctx, "restart", "-m", mode, "-l", c.log); err != nil {
		return time.Since(start), err
	}
	for {
		conn, err := pgx.Connect(ctx, c.URL())
		if err == nil {
			_ = conn.Close(ctx)
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the server (fast shutdown, immediate if that fails).
func (c *Cluster) Stop(ctx context.Context) error {
	if err := c.pgctl(ctx, "stop", "-m", "fast"); err != nil {
		return c.pgctl(ctx, "stop", "-m", "immediate")
	}
	return nil
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) error {
	args = append([]string{"-D", c.data, "-w", "-t", "60"}, args...)
	out, err := c.command(ctx, c.pgCtl, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("error running pg_ctl %s: %w: %s", args[4], err, lastLine(out))
	}
	return nil
}

// command runs name as the cluster's user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if c.asUser != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

func (c *Cluster) writeConfig() error {
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 200
shared_buffers = 128MB
fsync = on
synchronous_commit = on
log_min_messages = warning
`, c.port, c.dir)
	// Rewrite our block on each try rather than appending several ports.
	// The file exists (initdb wrote it), so writing keeps its owner.
	path := filepath.Join(c.data, "postgresql.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("error reading postgresql.conf: %w", err)
	}
	base := string(b)
	const marker = "\n# switchboard chaos\n"
	if i := strings.Index(base, marker); i >= 0 {
		base = base[:i]
	}
	if err := os.WriteFile(path, []byte(base+marker+conf), 0o600); err != nil {
		return fmt.Errorf("error writing postgresql.conf: %w", err)
	}
	return nil
}

// giveToPostgres makes dir the postgres user's and lets it reach dir
// through its parents, creating the user as deploy/devdb.sh does when it is
// missing.
func (c *Cluster) giveToPostgres() error {
	u, err := user.Lookup("postgres")
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres").CombinedOutput(); err != nil {
			return fmt.Errorf("error creating the postgres user: %w: %s", err, lastLine(out))
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return fmt.Errorf("error looking up the postgres user: %w", err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(c.dir, uid, gid); err != nil {
		return fmt.Errorf("error giving the cluster directory to postgres: %w", err)
	}
	for d := filepath.Dir(c.dir); d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("error reading %s: %w", d, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("error letting postgres reach %s: %w", d, err)
			}
		}
	}
	return nil
}

func (c *Cluster) createDatabase(ctx context.Context) error {
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("error connecting to the new cluster: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+Database); err != nil {
		return fmt.Errorf("error creating database: %w", err)
	}
	return nil
}

// findServerBinaries finds initdb and pg_ctl of one installation: on PATH,
// else the newest /usr/lib/postgresql/<version>/bin.
func findServerBinaries() (initdb, pgCtl string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if ctl := filepath.Join(filepath.Dir(p), "pg_ctl"); isExecutable(ctl) {
			return p, ctl, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			return filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl"), nil
		}
	}
	return "", "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql (deploy/devdb.sh does)")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("error finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
