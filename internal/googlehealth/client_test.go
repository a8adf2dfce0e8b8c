package googlehealth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
)

const (
	accessToken = "ya29.a0-access-token"
	healthUser  = "hu-5551234"
)

// fakeAPI is the Google Health API v4 as /work/shared/reference/wearables.md
// describes it (§3, §4, §7): bearer tokens, data points in pages whose
// token only works with identical parameters (a page may be empty and
// still carry a token), int64 values as JSON strings, civil dates as plain
// integers, and errors in Google's envelope.
type fakeAPI struct {
	t      *testing.T
	points []json.RawMessage // heart-rate points of healthUser, newest first

	mu       sync.Mutex
	requests []*http.Request
	queries  []string
}

func newFakeAPI(t *testing.T) (*fakeAPI, *googlehealth.Client) {
	f := &fakeAPI{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, googlehealth.NewClient(googlehealth.Config{APIBaseURL: srv.URL + "/v4/"}, srv.Client())
}

func googleError(w http.ResponseWriter, code int, status, message string, reason string) {
	body := map[string]any{"code": code, "status": status, "message": message}
	if reason != "" {
		body["details"] = []map[string]any{{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.queries = append(f.queries, r.URL.RawQuery)
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+accessToken {
		googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.", "")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v4/users/me/identity":
		_, _ = io.WriteString(w, `{"healthUserId":"`+healthUser+`","legacyUserId":"ABC123"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v4/users/me/settings":
		_, _ = io.WriteString(w, `{"timeZone":"America/New_York","distanceUnit":"MILES"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v4/users/"+healthUser+"/dataTypes/heart-rate/dataPoints":
		f.list(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v4/users/"+healthUser+"/dataTypes/steps/dataPoints:dailyRollUp":
		f.dailyRollUp(w, r)
	default:
		googleError(w, http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.", "")
	}
}

// list serves pages; its page token names the offset and the parameters
// it was issued for. Between the first and second page it serves one empty
// page that still carries a token.
func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size := 1440
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > googlehealth.MaxPageSize {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid page size.", "")
			return
		}
		size = n
	}
	params := q.Get("filter") + "|" + strconv.Itoa(size)
	offset, emptyServed := 0, false
	if tok := q.Get("pageToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		parts := strings.SplitN(string(raw), "#", 3)
		if err != nil || len(parts) != 3 || parts[2] != params {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Page token does not match the request.", "")
			return
		}
		offset, _ = strconv.Atoi(parts[0])
		emptyServed = parts[1] == "e"
	}
	token := func(off int, empty bool) string {
		e := "-"
		if empty {
			e = "e"
		}
		return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(off) + "#" + e + "#" + params))
	}
	page := struct {
		DataPoints    []json.RawMessage `json:"dataPoints"`
		NextPageToken string            `json:"nextPageToken,omitempty"`
	}{DataPoints: []json.RawMessage{}}
	switch {
	case offset > 0 && !emptyServed:
		page.NextPageToken = token(offset, true)
	default:
		end := min(offset+size, len(f.points))
		page.DataPoints = f.points[offset:end]
		if end < len(f.points) {
			page.NextPageToken = token(end, emptyServed)
		}
	}
	_ = json.NewEncoder(w).Encode(page)
}

func (f *fakeAPI) dailyRollUp(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/json" {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Body must be JSON.", "")
		return
	}
	var req struct {
		Range struct {
			Start, End struct{ Year, Month, Day int }
		} `json:"range"`
		WindowSizeDays int `json:"windowSizeDays"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.WindowSizeDays != 1 || req.Range.Start.Year == 0 || req.Range.End.Year == 0 {
		googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid range.", "")
		return
	}
	var out []string
	s := req.Range.Start
	for d := time.Date(s.Year, time.Month(s.Month), s.Day, 0, 0, 0, 0, time.UTC); d.Before(time.Date(req.Range.End.Year, time.Month(req.Range.End.Month), req.Range.End.Day, 0, 0, 0, 0, time.UTC)); d = d.AddDate(0, 0, 1) {
		n := d.AddDate(0, 0, 1)
		out = append(out, fmt.Sprintf(`{"civilStartTime":{"date":{"year":%d,"month":%d,"day":%d}},"civilEndTime":{"date":{"year":%d,"month":%d,"day":%d}},"steps":{"countSum":"%d"}}`,
			d.Year(), d.Month(), d.Day(), n.Year(), n.Month(), n.Day(), 1000+d.Day()))
	}
	_, _ = io.WriteString(w, `{"rollupDataPoints":[`+strings.Join(out, ",")+`]}`)
}

func heartRatePoint(i int) json.RawMessage {
	at := time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC).Add(-time.Duration(i) * 5 * time.Second)
	return json.RawMessage(fmt.Sprintf(`{"dataSource":{"platform":"FITBIT","recordingMethod":"PASSIVELY_MEASURED","device":{"displayName":"Charge 6","manufacturer":"Google"}},`+
		`"heartRate":{"beatsPerMinute":"%d","sampleTime":{"physicalTime":%q,"utcOffset":"-18000s"},"metadata":{"motionContext":"SEDENTARY"}}}`,
		60+i%40, at.Format(time.RFC3339)))
}

func TestClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	filter := googlehealth.Filter(googlehealth.TypeHeartRate, day, day.Add(24*time.Hour))

	t.Run("PagesAreFollowedWithIdenticalParametersUntilNoToken", func(t *testing.T) {
		t.Parallel()
		f, c := newFakeAPI(t)
		for i := range 25 {
			f.points = append(f.points, heartRatePoint(i))
		}
		var got []googlehealth.DataPoint
		pageToken, pages := "", 0
		for {
			p, err := c.ListDataPoints(ctx, accessToken, healthUser, googlehealth.TypeHeartRate, filter, pageToken, 10)
			require.NoError(t, err)
			pages++
			got = append(got, p.DataPoints...)
			if p.NextPageToken == "" {
				break
			}
			pageToken = p.NextPageToken
		}
		require.Len(t, got, 25)
		require.Equal(t, 4, pages, "10, an empty page with a token, 10, 5")
		require.Equal(t, googlehealth.Int64(60), got[0].HeartRate.BeatsPerMinute, "int64 values arrive as strings")
		require.Equal(t, -5*3600, got[0].HeartRate.SampleTime.UTCOffset.Seconds())
		require.Equal(t, "FITBIT|PASSIVELY_MEASURED|Google|Charge 6|", got[0].DataSource.Fingerprint())
		for _, q := range f.queries {
			require.Contains(t, q, "filter=heart_rate.sample_time.physical_time+%3E%3D+%222026-11-25T00%3A00%3A00Z%22", "filter URL-encoded once")
			require.Contains(t, q, "pageSize=10")
		}
	})

	t.Run("PageSizeIsCappedAtGooglesMaximum", func(t *testing.T) {
		t.Parallel()
		f, c := newFakeAPI(t)
		f.points = []json.RawMessage{heartRatePoint(0)}
		p, err := c.ListDataPoints(ctx, accessToken, healthUser, googlehealth.TypeHeartRate, filter, "", 50000)
		require.NoError(t, err)
		require.Len(t, p.DataPoints, 1)
		require.Contains(t, f.queries[0], "pageSize=10000")
	})

	t.Run("DailyRollUpSendsCivilDatesAsIntegers", func(t *testing.T) {
		t.Parallel()
		_, c := newFakeAPI(t)
		pts, err := c.DailyRollUp(ctx, accessToken, healthUser, googlehealth.TypeSteps,
			googlehealth.Date{Year: 2026, Month: 11, Day: 24}, googlehealth.Date{Year: 2026, Month: 11, Day: 26})
		require.NoError(t, err)
		require.Len(t, pts, 2)
		require.Equal(t, googlehealth.Date{Year: 2026, Month: 11, Day: 24}, pts[0].CivilStartTime.Date)
		require.Equal(t, googlehealth.Int64(1024), pts[0].Steps.CountSum)
	})

	t.Run("IdentityAndSettings", func(t *testing.T) {
		t.Parallel()
		f, c := newFakeAPI(t)
		id, err := c.Identity(ctx, accessToken)
		require.NoError(t, err)
		require.Equal(t, googlehealth.Identity{HealthUserID: healthUser, LegacyUserID: "ABC123"}, id)
		s, err := c.Settings(ctx, accessToken)
		require.NoError(t, err)
		require.Equal(t, "America/New_York", s.TimeZone)
		require.Equal(t, "application/json", f.requests[0].Header.Get("Accept"))
	})

	t.Run("ExpiredTokenIsUnauthorized", func(t *testing.T) {
		t.Parallel()
		_, c := newFakeAPI(t)
		_, err := c.Identity(ctx, "ya29.expired")
		require.Equal(t, googlehealth.ClassUnauthorized, googlehealth.ClassOf(err))
		var ge *googlehealth.Error
		require.ErrorAs(t, err, &ge)
		require.Equal(t, "UNAUTHENTICATED", ge.Status)
	})

	t.Run("ProbeCountsAnyAnswerAsUp", func(t *testing.T) {
		t.Parallel()
		_, c := newFakeAPI(t)
		require.NoError(t, c.Probe(ctx), "401 without a token: the API answers")
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			googleError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "The service is currently unavailable.", "")
		}))
		t.Cleanup(down.Close)
		require.Error(t, googlehealth.NewClient(googlehealth.Config{APIBaseURL: down.URL}, down.Client()).Probe(ctx))
	})
}

// answer is a server that answers every request with status, headers and body.
func answer(t *testing.T, status int, header http.Header, body string) *googlehealth.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, vs := range header {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return googlehealth.NewClient(googlehealth.Config{APIBaseURL: srv.URL}, srv.Client())
}

func envelope(code int, status, reason string) string {
	rec := httptest.NewRecorder()
	googleError(rec, code, status, "A message that may quote the request: heart rate 172 for Jane Doe.", reason)
	return rec.Body.String()
}

// TestErrorClasses: every answer Google gives becomes the class a worker
// acts on (reference §7).
func TestErrorClasses(t *testing.T) {
	t.Parallel()
	retryAfter := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	for name, tc := range map[string]struct {
		status     int
		header     http.Header
		body       string
		class      googlehealth.Class
		gStatus    string
		reason     string
		retryAfter time.Duration
	}{
		"400InvalidArgument":   {status: 400, body: envelope(400, "INVALID_ARGUMENT", ""), class: googlehealth.ClassPermanent, gStatus: "INVALID_ARGUMENT"},
		"400AccountNotLinked":  {status: 400, body: envelope(400, "FAILED_PRECONDITION", "ACCOUNT_NOT_LINKED"), class: googlehealth.ClassNotLinked, reason: "ACCOUNT_NOT_LINKED", gStatus: "FAILED_PRECONDITION"},
		"401":                  {status: 401, body: envelope(401, "UNAUTHENTICATED", ""), class: googlehealth.ClassUnauthorized, gStatus: "UNAUTHENTICATED"},
		"403ScopeNotGranted":   {status: 403, body: envelope(403, "PERMISSION_DENIED", ""), class: googlehealth.ClassPermissionDenied, gStatus: "PERMISSION_DENIED"},
		"404":                  {status: 404, body: envelope(404, "NOT_FOUND", ""), class: googlehealth.ClassPermanent, gStatus: "NOT_FOUND"},
		"408":                  {status: 408, body: "", class: googlehealth.ClassRetryable},
		"410LegacyFitbit":      {status: 410, body: `{"errors":[{"errorType":"gone"}]}`, class: googlehealth.ClassGone},
		"429WithSeconds":       {status: 429, header: retryAfter("42"), body: envelope(429, "RESOURCE_EXHAUSTED", ""), class: googlehealth.ClassThrottled, gStatus: "RESOURCE_EXHAUSTED", retryAfter: 42 * time.Second},
		"429WithoutHint":       {status: 429, body: envelope(429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"), class: googlehealth.ClassThrottled, gStatus: "RESOURCE_EXHAUSTED", reason: "RATE_LIMIT_EXCEEDED"},
		"429GarbledRetryAfter": {status: 429, header: retryAfter("soon"), body: "", class: googlehealth.ClassThrottled},
		"500":                  {status: 500, body: envelope(500, "INTERNAL", ""), class: googlehealth.ClassRetryable, gStatus: "INTERNAL"},
		"502HTMLFromAProxy":    {status: 502, body: "<html><body>Bad Gateway</body></html>", class: googlehealth.ClassRetryable},
		"503":                  {status: 503, header: retryAfter("3"), body: envelope(503, "UNAVAILABLE", ""), class: googlehealth.ClassRetryable, gStatus: "UNAVAILABLE", retryAfter: 3 * time.Second},
		"200GarbageBody":       {status: 200, body: `{"dataPoints":[{"heartRate":{"beatsPerMinute":"17x2"`, class: googlehealth.ClassRetryable, gStatus: "MALFORMED_RESPONSE"},
		"200NotJSON":           {status: 200, body: "<html>maintenance</html>", class: googlehealth.ClassRetryable, gStatus: "MALFORMED_RESPONSE"},
		"400WithoutAnEnvelope": {status: 400, body: "bad request", class: googlehealth.ClassPermanent},
		"409Aborted":           {status: 409, body: envelope(409, "ABORTED", ""), class: googlehealth.ClassPermanent, gStatus: "ABORTED"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := answer(t, tc.status, tc.header, tc.body)
			_, err := c.ListDataPoints(context.Background(), accessToken, healthUser, googlehealth.TypeHeartRate, "", "", 0)
			require.Error(t, err)
			require.Equal(t, tc.class, googlehealth.ClassOf(err))
			var ge *googlehealth.Error
			require.ErrorAs(t, err, &ge)
			require.Equal(t, tc.status, ge.HTTPStatus)
			require.Equal(t, tc.gStatus, ge.Status)
			require.Equal(t, tc.reason, ge.Reason)
			require.Equal(t, tc.retryAfter, ge.RetryAfter)
		})
	}

	t.Run("RetryAfterAsHTTPDate", func(t *testing.T) {
		t.Parallel()
		at := time.Now().Add(10 * time.Minute).UTC()
		c := answer(t, 429, retryAfter(at.Format(http.TimeFormat)), envelope(429, "RESOURCE_EXHAUSTED", ""))
		_, err := c.Identity(context.Background(), accessToken)
		var ge *googlehealth.Error
		require.ErrorAs(t, err, &ge)
		require.Greater(t, ge.RetryAfter, 8*time.Minute)
		require.LessOrEqual(t, ge.RetryAfter, 10*time.Minute)
	})

	t.Run("NetworkErrorsAndTimeoutsAreRetryable", func(t *testing.T) {
		t.Parallel()
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		_, err := googlehealth.NewClient(googlehealth.Config{APIBaseURL: closed.URL}, nil).Identity(context.Background(), accessToken)
		require.Error(t, err)
		require.Equal(t, googlehealth.ClassRetryable, googlehealth.ClassOf(err))

		block := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(block) })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = googlehealth.NewClient(googlehealth.Config{APIBaseURL: slow.URL}, slow.Client()).Identity(ctx, accessToken)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, googlehealth.ClassRetryable, googlehealth.ClassOf(err))

		c := googlehealth.NewClient(googlehealth.Config{APIBaseURL: slow.URL}, &http.Client{Timeout: time.Millisecond})
		_, err = c.Identity(context.Background(), accessToken)
		require.Error(t, err)
		require.Equal(t, googlehealth.ClassRetryable, googlehealth.ClassOf(err))
	})

	t.Run("IdentityWithoutUserIsAnError", func(t *testing.T) {
		t.Parallel()
		_, err := answer(t, 200, nil, `{}`).Identity(context.Background(), accessToken)
		require.Error(t, err)
	})
}

// TestErrorsHoldNoPHI: what Google sends back — error messages that may
// quote the request, bodies of clinical values — and what the request
// names — the patient's Google user, the window of their data, the access
// token — never reach an error's text, which River stores with the job.
func TestErrorsHoldNoPHI(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	filter := googlehealth.Filter(googlehealth.TypeHeartRate, day, day.Add(24*time.Hour))
	secrets := []string{"Jane", "172", healthUser, accessToken, "2026-11-25", "pg-token-1", "heartRate"}
	check := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		for _, s := range secrets {
			require.NotContains(t, err.Error(), s)
			require.NotContains(t, fmt.Sprintf("%+v", err), s)
		}
	}
	list := func(c *googlehealth.Client) error {
		_, err := c.ListDataPoints(context.Background(), accessToken, healthUser, googlehealth.TypeHeartRate, filter, "pg-token-1", 100)
		return err
	}

	t.Run("ErrorEnvelope", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{400, 401, 403, 404, 429, 500, 503} {
			check(t, list(answer(t, status, nil, envelope(status, "INVALID_ARGUMENT", "ACCOUNT_NOT_LINKED"))))
		}
	})

	t.Run("MalformedBodyOfValues", func(t *testing.T) {
		t.Parallel()
		check(t, list(answer(t, 200, nil, `{"dataPoints":[{"heartRate":{"beatsPerMinute":"172","note":"Jane"`)))
	})

	t.Run("ConnectionRefused", func(t *testing.T) {
		t.Parallel()
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		check(t, list(googlehealth.NewClient(googlehealth.Config{APIBaseURL: closed.URL}, nil)))
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		block := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(block) })
		err := list(googlehealth.NewClient(googlehealth.Config{APIBaseURL: slow.URL}, &http.Client{Timeout: time.Millisecond}))
		check(t, err)
		var ne interface{ Timeout() bool }
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "still a timeout to whoever asks")
	})
}
