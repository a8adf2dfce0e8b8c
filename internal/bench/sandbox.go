package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// Sandbox credentials: the sandbox accepts these only.
const (
	sandboxSID   = "ACbench00000000000000000000000000"
	sandboxToken = "benchauthtoken000000000000000000"
	sandboxFrom  = "+15005550006"
	// callbackBase is never called (the sandbox's lifecycle is not run);
	// the status callback URL only carries each message's id to the sandbox.
	callbackBase = "http://127.0.0.1:9"
)

// provider is the sandbox Twilio, recording when each create request for a
// message arrives (before the sandbox's own latency is applied).
type provider struct {
	sandbox *twiliosandbox.Server
	srv     *http.Server
	url     string

	mu       sync.Mutex
	arrivals map[int64][]time.Time
}

func startProvider() (*provider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &provider{
		sandbox:  twiliosandbox.New(twiliosandbox.Config{AccountSID: sandboxSID, AuthToken: sandboxToken}, nil),
		url:      "http://" + ln.Addr().String(),
		arrivals: map[int64][]time.Time{},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *provider) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

func (p *provider) twilio() TwilioConfig {
	return TwilioConfig{AccountSID: sandboxSID, AuthToken: sandboxToken, FromNumber: sandboxFrom, APIBaseURL: p.url}
}

// ServeHTTP records creates and hands every request to the sandbox.
func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json") {
		at := time.Now()
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err == nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			if id, ok := messageID(body); ok {
				p.mu.Lock()
				p.arrivals[id] = append(p.arrivals[id], at)
				p.mu.Unlock()
			}
		}
	}
	p.sandbox.ServeHTTP(w, r)
}

// messageID reads the message id from a create request's status callback.
func messageID(form []byte) (int64, bool) {
	v, err := neturl.ParseQuery(string(form))
	if err != nil {
		return 0, false
	}
	cb, err := neturl.Parse(v.Get("StatusCallback"))
	if err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(cb.Query().Get("m"), 10, 64)
	return id, err == nil
}

// take returns the arrivals recorded so far and forgets them.
func (p *provider) take() map[int64][]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.arrivals
	p.arrivals = map[int64][]time.Time{}
	return a
}

// firsts flattens arrivals to the first arrival of each message.
func firsts(a map[int64][]time.Time) []time.Time {
	out := make([]time.Time, 0, len(a))
	for _, t := range a {
		out = append(out, t[0])
	}
	return out
}

// duplicates counts messages the provider received more than once.
func duplicates(a map[int64][]time.Time) int {
	n := 0
	for _, t := range a {
		if len(t) > 1 {
			n++
		}
	}
	return n
}

var errTimeout = errors.New("timed out")
