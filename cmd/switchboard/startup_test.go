package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// A PostgreSQL that goes away just after the worker's pool reached it — a
// restart or failover landing between Open's ping and the worker's first
// read — is waited for, as Open waits, and the worker starts. It used to
// exit with "error reading job kinds" (the crash suite, seed 5: a worker
// restarted after a SIGKILL met `pg_ctl restart -m immediate` and exited).
// The proxy in front of the server is the restart: it passes the first
// connection's first query (Open's ping), then closes that connection at
// its next message and refuses the next three connections; after that it
// passes everything. Counted, not timed.
func TestWorkerStartsThroughADatabaseRestart(t *testing.T) {
	target, err := url.Parse(dbtest.NewDatabase(t))
	require.NoError(t, err)
	p := &restartProxy{target: target.Host, refuse: 3}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go p.serve(l)
	through := *target
	through.Host = l.Addr().String()

	addr := freeAddr(t)
	for k, v := range map[string]string{
		"DATABASE_URL": through.String(), "WORKER_ADDR": addr, "WORKER_METRICS_ADDR": freeAddr(t),
		"SMS_PROVIDERS": "twilio", "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef0123456789abcdef",
		"TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef", "TWILIO_FROM_NUMBER": "+15005550006",
		"TWILIO_API_BASE_URL": "http://127.0.0.1:1", "WORKER_QUEUES": "sms=2,maintenance=1", "LOG_LEVEL": "warn",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"worker"}, io.Discard, testLog{t}) }()
	t.Cleanup(func() { cancel(); <-done })

	// The bound is against a hang, not a timing.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the worker exited while the database restarted: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "the worker never became ready")
		time.Sleep(50 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	require.True(t, p.broke, "the restart happened after the first query")
	require.Zero(t, p.refuse, "every refused connection was tried again")
}

// restartProxy forwards PostgreSQL connections to target. It lets the
// first connection's first simple query (pgx's ping) through, then closes
// that connection at its next message, and closes the next refuse
// connections at once, as a server that restarts does.
type restartProxy struct {
	target string

	mu     sync.Mutex
	conns  int
	broke  bool
	refuse int
}

func (p *restartProxy) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		first := p.conns == 1
		refused := p.broke && p.refuse > 0
		if refused {
			p.refuse--
		}
		p.mu.Unlock()
		if refused {
			_ = c.Close()
			continue
		}
		go p.forward(c, first)
	}
}

func (p *restartProxy) forward(c net.Conn, first bool) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(c, s) }()
	if !first {
		_, _ = io.Copy(s, c)
		return
	}
	// The startup message has no type byte: a length, then the rest.
	if !relay(c, s) {
		return
	}
	queries := 0
	for {
		var typ [1]byte
		if _, err := io.ReadFull(c, typ[:]); err != nil {
			return
		}
		if queries > 0 && typ[0] != 'X' { // the ping is answered; the next request meets the restart
			p.mu.Lock()
			p.broke = true
			p.mu.Unlock()
			return
		}
		if typ[0] == 'Q' {
			queries++
		}
		if _, err := s.Write(typ[:]); err != nil || !relay(c, s) {
			return
		}
	}
}

// relay copies one length-prefixed message body (its 4-byte length
// included) from c to s.
func relay(c io.Reader, s io.Writer) bool {
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return false
	}
	if _, err := s.Write(n[:]); err != nil {
		return false
	}
	_, err := io.CopyN(s, c, int64(binary.BigEndian.Uint32(n[:]))-4)
	return err == nil
}
