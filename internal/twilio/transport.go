package twilio

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
)

// maxResponseBody bounds how much of a response is read into memory. A
// list page of Twilio messages is far smaller; a longer body is cut, fails
// to decode and is classified by its status.
const maxResponseBody = 4 << 20

// NewTransport returns the shared transport New uses when given none: a
// clone of http.DefaultTransport that keeps up to 256 idle connections to
// the API, so that many concurrent workers reuse their TLS connections.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	if t.MaxIdleConns < 256 {
		t.MaxIdleConns = 256
	}
	return t
}

// callTransport is the RoundTripper of one SDK call. twilio-go builds its
// requests on context.Background() against https://api.twilio.com and hides
// the response status and headers when it fails; callTransport
//
//   - sends the request to the configured base URL instead,
//   - attaches the caller's context, so cancelling a job aborts the call,
//   - records whether a request was fully written, which separates "certainly
//     not accepted" from "may have been accepted",
//   - records the last response's status and Retry-After header, and
//   - reads the response body into memory and closes it, so the connection
//     returns to the shared pool even though the SDK decodes only a prefix
//     of it (and leaves error bodies unclosed).
//
// It delegates to the shared transport. Its zero value is not usable.
type callTransport struct {
	ctx    context.Context
	base   http.RoundTripper
	target *url.URL

	mu         sync.Mutex
	called     bool
	wrote      bool
	status     int
	retryAfter string
}

// seen is what a callTransport observed during one SDK call.
type seen struct {
	called     bool   // RoundTrip ran: the SDK tried to reach the network
	wrote      bool   // some request was fully written to a connection
	status     int    // status of the last response, 0 if none arrived
	retryAfter string // its Retry-After header
}

func (t *callTransport) seen() seen {
	t.mu.Lock()
	defer t.mu.Unlock()
	return seen{called: t.called, wrote: t.wrote, status: t.status, retryAfter: t.retryAfter}
}

// RoundTrip implements http.RoundTripper.
func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.called = true
	t.status, t.retryAfter = 0, "" // what is recorded belongs to the last request
	t.mu.Unlock()

	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				t.mu.Lock()
				t.wrote = true
				t.mu.Unlock()
			}
		},
	}
	// The SDK's own context is context.Background(), with http.Client's
	// timeout carried by req.Cancel, which the shallow copy keeps.
	out := req.WithContext(httptrace.WithClientTrace(t.ctx, trace))
	u := *req.URL
	u.Scheme = t.target.Scheme
	u.Host = t.target.Host
	if p := strings.TrimSuffix(t.target.Path, "/"); p != "" {
		u.Path = p + u.Path
		u.RawPath = ""
	}
	out.URL = &u
	out.Host = ""

	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.status = resp.StatusCode
	t.retryAfter = resp.Header.Get("Retry-After")
	t.mu.Unlock()

	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	if readErr != nil {
		// The status arrived but the body was cut (timeout, reset):
		// whatever was read is handed on, fails to decode, and the call
		// is classified by the status recorded above.
		body = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// noRedirects makes http.Client return a redirect as the response, as
// twilio-go's own default client does.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
