package googlehealth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds a response body: a full page of 10,000 points.
const maxResponse = 32 << 20

// MaxPageSize is the largest page Google serves (sleep: 25).
const MaxPageSize = 10000

// Client reads the Google Health API with a patient's access token. It
// does not retry: callers wrap calls in their resilience policies. It is
// safe for concurrent use.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for cfg's API base URL using httpClient (nil:
// a client with a 30 s timeout).
func NewClient(cfg Config, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: cfg.withDefaults().APIBaseURL, http: httpClient}
}

// Identity returns the user's healthUserId (and legacy Fitbit id).
func (c *Client) Identity(ctx context.Context, accessToken string) (Identity, error) {
	var id Identity
	err := c.do(ctx, accessToken, http.MethodGet, "/users/me/identity", nil, nil, &id)
	if err == nil && id.HealthUserID == "" {
		err = fmt.Errorf("google health identity has no healthUserId")
	}
	return id, err
}

// Settings returns the user's settings (time zone).
func (c *Client) Settings(ctx context.Context, accessToken string) (Settings, error) {
	var s Settings
	err := c.do(ctx, accessToken, http.MethodGet, "/users/me/settings", nil, nil, &s)
	return s, err
}

// ListDataPoints reads one page of dataType's points for user matching
// filter. Repeat with the returned NextPageToken and the same parameters
// until it is empty (a page may be empty and still carry a token).
func (c *Client) ListDataPoints(ctx context.Context, accessToken, user, dataType, filter, pageToken string, pageSize int) (Page, error) {
	q := url.Values{}
	if filter != "" {
		q.Set("filter", filter)
	}
	if pageSize > 0 {
		q.Set("pageSize", strconv.Itoa(min(pageSize, MaxPageSize)))
	}
	if pageToken != "" {
		q.Set("pageToken", pageToken)
	}
	var p Page
	err := c.do(ctx, accessToken, http.MethodGet, "/users/"+url.PathEscape(user)+"/dataTypes/"+url.PathEscape(dataType)+"/dataPoints", q, nil, &p)
	return p, err
}

// DailyRollUp returns dataType's reconciled daily totals for the civil
// dates in [start, end).
func (c *Client) DailyRollUp(ctx context.Context, accessToken, user, dataType string, start, end Date) ([]RollupPoint, error) {
	var req DailyRollupRequest
	req.Range.Start, req.Range.End, req.WindowSizeDays = start, end, 1
	var resp RollupResponse
	err := c.do(ctx, accessToken, http.MethodPost, "/users/"+url.PathEscape(user)+"/dataTypes/"+url.PathEscape(dataType)+"/dataPoints:dailyRollUp", nil, req, &resp)
	return resp.RollupDataPoints, err
}

// Probe is a cheap call that tells whether the API answers at all (any
// HTTP answer, even 401, means it is up).
func (c *Client) Probe(ctx context.Context) error {
	err := c.do(ctx, "", http.MethodGet, "/users/me/identity", nil, nil, nil)
	if ge, ok := err.(*Error); ok && ge.HTTPStatus < 500 {
		return nil
	}
	return err
}

// redacted is the URL of path as an error may name it: no query (filter,
// page token) and the user's id replaced by {user}.
func (c *Client) redacted(path string) string {
	if rest, ok := strings.CutPrefix(path, "/users/"); ok {
		if i := strings.IndexByte(rest, '/'); i > 0 && rest[:i] != "me" {
			path = "/users/{user}" + rest[i:]
		}
	}
	return c.base + path
}

func (c *Client) do(ctx context.Context, accessToken, method, path string, q url.Values, in, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL names the patient's Google user and the window of their
		// data; River stores this text with the job.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = &url.Error{Op: ue.Op, URL: c.redacted(path), Err: ue.Err}
		}
		return fmt.Errorf("error calling google health api: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("error reading google health api response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return newError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		// Not echoed: the body holds clinical values.
		return &Error{HTTPStatus: resp.StatusCode, Status: "MALFORMED_RESPONSE"}
	}
	return nil
}
