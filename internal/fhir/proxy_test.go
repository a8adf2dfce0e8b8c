package fhir_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// peerProxy stands in front of the shared FHIR peer for one test: it counts
// that test's requests (the peer's own $stats counts every test's) and can
// run a hook before a request goes on (another client's write, to race).
type peerProxy struct {
	base string // FHIR base through the proxy
	mu   sync.Mutex
	n    int
	log  []string // "METHOD path" of every request
	hook func(r *http.Request)
}

func newPeerProxy(t *testing.T, peerBase string) *peerProxy {
	t.Helper()
	u, err := url.Parse(peerBase)
	require.NoError(t, err)
	target := &url.URL{Scheme: u.Scheme, Host: u.Host}
	// The Host header stays the proxy's, so the peer's links and Locations
	// point back through the proxy.
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &peerProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		hook := p.hook
		if !strings.HasSuffix(r.URL.Path, "/$stats") {
			p.n++
			p.log = append(p.log, r.Method+" "+strings.TrimPrefix(r.URL.Path, u.Path+"/"))
		}
		p.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.base = srv.URL + u.Path
	return p
}

// requests is how many requests this test's proxy passed on.
func (p *peerProxy) requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// since returns the requests after the first n.
func (p *peerProxy) since(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log[n:]...)
}

func (p *peerProxy) setHook(h func(r *http.Request)) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}
