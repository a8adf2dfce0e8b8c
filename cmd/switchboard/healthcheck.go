package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// healthcheckCmd probes a URL for container health checks: the runtime
// image has no shell and no curl, so the binary checks itself.
type healthcheckCmd struct {
	URL     string        `arg:"" help:"URL to GET, e.g. http://127.0.0.1:8080/healthz."`
	Timeout time.Duration `default:"3s" help:"How long to wait for the answer."`
}

func (healthcheckCmd) Help() string {
	return "GETs URL and exits 0 on a 2xx answer, 1 otherwise."
}

func (c *healthcheckCmd) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("healthcheck URL must be an http(s) URL")
	}
	return nil
}

func (c *healthcheckCmd) Run(e *env) error {
	u, _ := url.Parse(c.URL)
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unhealthy: %s answered %d", u.Redacted(), resp.StatusCode)
	}
	return nil
}
