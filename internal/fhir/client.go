package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/resilience"
)

// MediaType is FHIR's JSON media type.
const MediaType = "application/fhir+json"

// maxBody bounds what the client reads from a response.
const maxBody = 32 << 20

// Authorizer supplies the bearer token of an endpoint. Invalidate drops a
// cached token after a 401 so the next Token fetches a fresh one.
type Authorizer interface {
	Token(ctx context.Context) (string, error)
	Invalidate()
}

// StaticToken is an Authorizer for a fixed bearer token.
type StaticToken string

// Token returns the token.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// Invalidate does nothing: a static token cannot be refreshed.
func (StaticToken) Invalidate() {}

// Client talks FHIR R4 REST to one endpoint. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	auth Authorizer
}

// NewClient returns a client for baseURL (no trailing slash needed). auth
// may be nil. It returns an error for a base URL that is not absolute http(s).
func NewClient(baseURL string, httpClient *http.Client, auth Authorizer) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fhir: base URL must be an absolute http(s) URL")
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, http: httpClient, auth: auth}, nil
}

// BaseURL returns the endpoint's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Response is a FHIR response that succeeded (2xx).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// VersionID returns the version from the ETag, Location or meta.versionId.
func (r *Response) VersionID() string {
	if v := parseETag(r.Header.Get("ETag")); v != "" {
		return v
	}
	if m := reHistory.FindStringSubmatch(r.Header.Get("Location")); m != nil {
		return m[2]
	}
	var res struct {
		Meta struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
	}
	_ = json.Unmarshal(r.Body, &res)
	return res.Meta.VersionID
}

// ResourceID returns the id from the body or the Location header.
func (r *Response) ResourceID() string {
	var res struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(r.Body, &res) == nil && res.ID != "" {
		return res.ID
	}
	if m := reHistory.FindStringSubmatch(r.Header.Get("Location")); m != nil {
		return m[1]
	}
	if m := reLocation.FindStringSubmatch(r.Header.Get("Location")); m != nil {
		return m[1]
	}
	return ""
}

var (
	reHistory  = regexp.MustCompile(`/([A-Za-z0-9\-.]{1,64})/_history/([^/\s]+)$`)
	reLocation = regexp.MustCompile(`/([A-Za-z0-9\-.]{1,64})$`)
	reETag     = regexp.MustCompile(`^(?:W/)?"([^"]+)"$`)
)

// parseETag returns the opaque version inside W/"…".
func parseETag(s string) string {
	if m := reETag.FindStringSubmatch(strings.TrimSpace(s)); m != nil {
		return m[1]
	}
	return ""
}

// ETag formats a version for If-Match.
func ETag(version string) string { return `W/"` + version + `"` }

// request is one interaction.
type request struct {
	op          string
	method      string
	target      string // path relative to base, or an absolute URL (next links)
	body        []byte
	header      http.Header
	conditional bool
}

// Do performs one interaction: a path relative to the base, or an absolute
// URL on the endpoint's origin. A 401 invalidates the token and retries once
// with a fresh one. Non-2xx answers are *Error.
func (c *Client) do(ctx context.Context, rq request) (*Response, error) {
	u, err := c.resolve(rq.target)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		resp, err := c.once(ctx, u, rq)
		var fe *Error
		if try == 0 && c.auth != nil && errors.As(err, &fe) && fe.Status == http.StatusUnauthorized {
			c.auth.Invalidate()
			continue
		}
		return resp, err
	}
}

func (c *Client) resolve(target string) (*url.URL, error) {
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, &OriginError{Origin: c.base.Scheme + "://" + c.base.Host}
		}
		if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
			return nil, &OriginError{Origin: c.base.Scheme + "://" + c.base.Host}
		}
		return u, nil
	}
	u, err := url.Parse(c.base.String() + "/" + strings.TrimPrefix(target, "/"))
	if err != nil {
		return nil, fmt.Errorf("fhir: bad request target")
	}
	return u, nil
}

func (c *Client) once(ctx context.Context, u *url.URL, rq request) (*Response, error) {
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), body)
	if err != nil {
		return nil, &Error{Op: rq.op, Err: err}
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", MediaType)
	if rq.body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", MediaType+"; charset=utf-8")
	}
	if c.auth != nil {
		tok, err := c.auth.Token(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The transport error may quote the URL (ids, search values): keep
		// only its kind.
		return nil, &Error{Op: rq.op, Conditional: rq.conditional, Err: transportError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &Error{Op: rq.op, Status: 0, Conditional: rq.conditional, Err: transportError(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &Error{Op: rq.op, Status: resp.StatusCode, Issues: issueCodes(b), Diagnostics: diagnostics(b, rq.body),
			RetryAfter: resilience.RetryAfter(resp.Header.Get("Retry-After"), time.Now()), Conditional: rq.conditional}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// transportError strips the URL from a transport error.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("timeout")
		}
		return fmt.Errorf("transport: %w", ue.Err)
	}
	return err
}

// Capabilities fetches GET [base]/metadata as raw JSON.
func (c *Client) Capabilities(ctx context.Context) ([]byte, error) {
	r, err := c.do(ctx, request{op: "capabilities", method: http.MethodGet, target: "metadata"})
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

// SmartConfiguration fetches [base]/.well-known/smart-configuration.
func (c *Client) SmartConfiguration(ctx context.Context) ([]byte, error) {
	r, err := c.do(ctx, request{op: "smart-configuration", method: http.MethodGet, target: ".well-known/smart-configuration"})
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

// Read is GET [type]/[id].
func (c *Client) Read(ctx context.Context, resourceType, id string) (*Response, error) {
	return c.do(ctx, request{op: "read " + resourceType, method: http.MethodGet, target: resourceType + "/" + url.PathEscape(id)})
}

// ConditionalCreate is POST [type] with If-None-Exist: identifier=system|value.
// 201: created; 200: one already existed (returned, our body ignored);
// 412: several exist.
func (c *Client) ConditionalCreate(ctx context.Context, resourceType string, ident Identifier, body []byte) (*Response, error) {
	h := http.Header{}
	h.Set("If-None-Exist", ident.Search())
	h.Set("Prefer", "return=representation")
	return c.do(ctx, request{op: "conditional create " + resourceType, method: http.MethodPost, target: resourceType,
		body: body, header: h, conditional: true})
}

// Update is PUT [type]/[id], version-aware with If-Match when version is set.
func (c *Client) Update(ctx context.Context, resourceType, id, version string, body []byte) (*Response, error) {
	h := http.Header{}
	if version != "" {
		h.Set("If-Match", ETag(version))
	}
	h.Set("Prefer", "return=representation")
	return c.do(ctx, request{op: "update " + resourceType, method: http.MethodPut, target: resourceType + "/" + url.PathEscape(id),
		body: body, header: h})
}

// Patch is PATCH [type]/[id] with a JSON Patch document, version-aware
// with If-Match when version is set (the patch should also test
// /meta/versionId: some servers ignore If-Match on PATCH).
func (c *Client) Patch(ctx context.Context, resourceType, id, version string, patch []byte) (*Response, error) {
	h := http.Header{}
	if version != "" {
		h.Set("If-Match", ETag(version))
	}
	h.Set("Content-Type", "application/json-patch+json")
	h.Set("Prefer", "return=representation")
	return c.do(ctx, request{op: "patch " + resourceType, method: http.MethodPatch, target: resourceType + "/" + url.PathEscape(id),
		body: patch, header: h})
}

// Transaction posts a transaction Bundle to the base.
func (c *Client) Transaction(ctx context.Context, bundle []byte) (*Response, error) {
	h := http.Header{}
	h.Set("Prefer", "return=representation")
	return c.do(ctx, request{op: "transaction", method: http.MethodPost, target: "", body: bundle, header: h, conditional: true})
}

// Search runs GET [type]?query and calls page for every searchset page,
// following link[next] verbatim as long as it stays on the endpoint's
// origin (an *OriginError otherwise), up to maxPages pages. It reports
// whether more pages were left.
func (c *Client) Search(ctx context.Context, resourceType string, query url.Values, maxPages int, page func(bundle []byte) error) (bool, error) {
	target := resourceType + "?" + query.Encode()
	for n := 0; ; n++ {
		if n >= maxPages {
			return true, nil
		}
		r, err := c.do(ctx, request{op: "search " + resourceType, method: http.MethodGet, target: target})
		if err != nil {
			return false, err
		}
		if err := page(r.Body); err != nil {
			return false, err
		}
		var b struct {
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return false, &Error{Op: "search " + resourceType, Status: r.Status, Issues: []string{"body is not a Bundle"}}
		}
		next := ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if next == "" {
			return false, nil
		}
		if _, err := c.resolve(next); err != nil {
			return false, err
		}
		target = next
	}
}

// Identifier is a business identifier.
type Identifier struct {
	System string
	Value  string
}
