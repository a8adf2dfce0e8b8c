package telnyx

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
)

// maxResponseBody bounds how much of a response is read into memory. A
// page of detail records is far smaller; a longer body is cut, fails to
// decode and is classified by its status.
const maxResponseBody = 4 << 20

// userAgent identifies Switchboard to Telnyx.
const userAgent = "switchboard-telnyx/1"

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

// exchange is what one HTTP request revealed: everything classify needs.
type exchange struct {
	// built is false when the request could not even be built (nothing
	// was attempted).
	built bool
	// wrote is true once the request was fully written to a connection:
	// from then on Telnyx may have acted on it.
	wrote bool
	// status is the response's status, 0 when no response arrived.
	status int
	header http.Header
	// body is the response body, nil when it could not be read.
	body []byte
	// err is the transport error (no response, or a body cut short) or
	// the build error. It may quote the request URL; classify strips it.
	err error
}

// do sends one request to the API: method, path below the base URL, query,
// and payload encoded as JSON when not nil. It reads the whole response
// (up to maxResponseBody) and closes it, so the connection returns to the
// pool. It never retries.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, payload any) exchange {
	var body io.Reader
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return exchange{err: fmt.Errorf("error encoding request: %w", err)}
		}
		body = bytes.NewReader(b)
	}

	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	}
	u := *c.base
	u.Path = strings.TrimSuffix(c.base.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, u.String(), body)
	if err != nil {
		return exchange{err: fmt.Errorf("error building request: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	ex := exchange{built: true}
	resp, err := c.http.Do(req)
	ex.wrote = wrote.Load()
	if err != nil {
		ex.err = err
		return ex
	}
	ex.status, ex.header = resp.StatusCode, resp.Header
	ex.body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	if err != nil {
		// The status arrived but the body was cut (timeout, reset): the
		// call is classified by its status, and a 2xx cannot be used.
		ex.body, ex.err = nil, err
	}
	return ex
}

// noRedirects makes http.Client return a redirect as the response: a base
// URL that redirects is not Telnyx's API, and a redirected POST would be
// resent.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
