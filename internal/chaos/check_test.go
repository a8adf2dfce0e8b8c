package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFaultyInjectsEachFault(t *testing.T) {
	t.Parallel()

	type bundle struct {
		p      *provider
		client *http.Client
		url    string
		send   func() (*http.Response, error)
	}
	setup := func(t *testing.T, mix FaultMix) *bundle {
		t.Helper()
		p := newTwilio(1, 0, nil)
		p.faults.setMix(mix)
		p.faults.maxHang = 5 * time.Second
		srv := httptest.NewServer(p.faults)
		t.Cleanup(srv.Close)
		env := p.childEnv(srv.URL)
		b := &bundle{p: p, client: &http.Client{Timeout: 300 * time.Millisecond}, url: srv.URL}
		b.send = func() (*http.Response, error) {
			form := url.Values{"To": {"+14155550123"}, "From": {"+15005550006"}, "Body": {"hello #1:"},
				"StatusCallback": {"http://127.0.0.1:1/webhooks/twilio/status?m=42"}}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/2010-04-01/Accounts/"+env["TWILIO_ACCOUNT_SID"]+"/Messages.json", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
			return b.client.Do(req)
		}
		return b
	}

	tests := []struct {
		name     string
		mix      FaultMix
		status   int // 0: the client times out
		stored   int
		recorded string
	}{
		{name: "Pass", mix: FaultMix{}, status: http.StatusCreated, stored: 1, recorded: "pass"},
		{name: "ServerErrorBeforeAccept", mix: FaultMix{ServerError: 1}, status: http.StatusInternalServerError, stored: 0, recorded: "5xx_before_accept"},
		{name: "ServerErrorAfterAccept", mix: FaultMix{ServerError: 1, AfterAccept: 1}, status: http.StatusInternalServerError, stored: 1, recorded: "5xx_after_accept"},
		{name: "Throttle", mix: FaultMix{Throttle: 1}, status: http.StatusTooManyRequests, stored: 0, recorded: "429"},
		{name: "TimeoutBeforeAccept", mix: FaultMix{Timeout: 1}, status: 0, stored: 0, recorded: "timeout_before_accept"},
		{name: "TimeoutAfterAccept", mix: FaultMix{Timeout: 1, AfterAccept: 1}, status: 0, stored: 1, recorded: "timeout_after_accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.mix)
			resp, err := b.send()
			if tt.status == 0 {
				require.Error(t, err, "the client gave up")
			} else {
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, tt.status, resp.StatusCode)
				if tt.status == http.StatusTooManyRequests {
					require.Equal(t, "1", resp.Header.Get("Retry-After"))
				}
			}
			require.Eventually(t, func() bool { return len(b.p.messages()) == tt.stored }, 5*time.Second, 10*time.Millisecond)
			for _, m := range b.p.messages() {
				require.Equal(t, int64(42), m.MessageID, "the callback's m is read back")
			}
			require.Equal(t, map[string]int64{tt.recorded: 1}, b.p.faults.counts().Create)
		})
	}

	t.Run("OutagePassesToTheSandboxChaos", func(t *testing.T) {
		t.Parallel()
		b := setup(t, FaultMix{ServerError: 1})
		b.p.setOutage(true)
		resp, err := b.send()
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.Equal(t, int64(1), b.p.refused())
		require.Empty(t, b.p.messages())
	})
}

func TestFaultMixValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, IssueMix.Validate())
	require.Error(t, FaultMix{ServerError: 0.6, Throttle: 0.5}.Validate())
	require.Error(t, FaultMix{AfterAccept: 1.5}.Validate())
	require.Error(t, FaultMix{Timeout: -0.1}.Validate())
}

func TestPendingReason(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	p := checkParams{rescueAfter: 2 * time.Minute, rescueInterval: 30 * time.Second, sendTimeout: 20 * time.Second, unavailableLimit: 2 * time.Hour}
	tests := []struct {
		name  string
		row   msgRow
		why   string
		legit bool
	}{
		{"Accepted", msgRow{ProviderID: "SM1", JobState: "completed"}, pendAccepted, true},
		{"NoJob", msgRow{}, lostNoJob, false},
		{"Available", msgRow{JobState: "available"}, pendWaiting, true},
		{"Backoff", msgRow{JobState: "retryable", Attempt: 3, MaxAttempts: 10}, pendBackoff, true},
		{"OutOfAttempts", msgRow{JobState: "retryable", Attempt: 10, MaxAttempts: 10}, lostOutOfTries, false},
		{"Snoozed", msgRow{JobState: "scheduled"}, pendScheduled, true},
		{"HeldSaysWhy", msgRow{JobState: "scheduled", Metadata: map[string]any{"hold_reason": "rate_slot"}}, pendScheduled + " (rate_slot)", true},
		{"Unavailable", msgRow{JobState: "scheduled", Metadata: map[string]any{"unavailable_since": ago(time.Hour).Format(time.RFC3339Nano)}}, pendUnavailable, true},
		{"UnavailablePastLimit", msgRow{JobState: "scheduled", Metadata: map[string]any{"unavailable_since": ago(3 * time.Hour).Format(time.RFC3339Nano)}}, pendScheduled, true},
		{"Running", msgRow{JobState: "running", AttemptedAt: ago(5 * time.Second)}, pendRunning, true},
		{"AwaitingRescue", msgRow{JobState: "running", AttemptedAt: ago(2 * time.Minute)}, pendRescue, true},
		{"Stuck", msgRow{JobState: "running", AttemptedAt: ago(4 * time.Minute)}, lostStuck, false},
		{"Completed", msgRow{JobState: "completed"}, lostCompleted, false},
		{"CancelledWithoutDeadLetter", msgRow{JobState: "cancelled"}, lostNoDeadLetter, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			why, legit := pendingReason(&tt.row, p, now)
			require.Equal(t, tt.why, why)
			require.Equal(t, tt.legit, legit)
		})
	}
}

func TestJudgeDeadLetter(t *testing.T) {
	t.Parallel()
	byID := map[int64]*msgRow{1: {ID: 1, Key: "k1"}, 2: {ID: 2, Key: "k2"}}
	kinds := map[string]string{"k1": kindPermanent, "k2": kindValid}
	ok, _ := judgeDeadLetter(DeadLetter{Class: "permanent", Subject: "message/1"}, byID, kinds)
	require.True(t, ok)
	ok, _ = judgeDeadLetter(DeadLetter{Class: "permanent", Subject: "message/2"}, byID, kinds)
	require.False(t, ok, "a valid message must not be dead-lettered as permanent")
	ok, _ = judgeDeadLetter(DeadLetter{Class: "retries_exhausted", Subject: "message/1"}, byID, kinds)
	require.False(t, ok)
	ok, _ = judgeDeadLetter(DeadLetter{Class: "permanent", Subject: "inbound_webhook/3"}, byID, kinds)
	require.True(t, ok)
	ok, _ = judgeDeadLetter(DeadLetter{Kind: "fhir_push", Class: "permanent", Subject: "observation/7",
		Error: "fhir create Observation: HTTP 400 [error/invalid]"}, byID, kinds)
	require.False(t, ok, "no permanent cause is planted for FHIR pushes")
	ok, _ = judgeDeadLetter(DeadLetter{Kind: "fhir_push", Class: "retries_exhausted", Subject: "observation/7"}, byID, kinds)
	require.False(t, ok)
	ok, _ = judgeDeadLetter(DeadLetter{Kind: "fhir_push", Class: "permanent", Subject: "observation/7",
		Error: "JobCancelError: fhir update Observation: HTTP 500 [error/transient]"}, byID, kinds)
	require.True(t, ok, "the documented 500 rule, met through injected 500s")
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	c := Defaults(ModeDelivery)
	c.Binary = "/bin/true"
	c = c.withDefaults()
	require.NoError(t, c.validate())
	require.Equal(t, 10000, c.Messages)
	require.Equal(t, IssueMix, c.Faults)
	require.Equal(t, 200*time.Second, c.plannedStream())

	c = Config{Binary: "/bin/true"}.withDefaults()
	require.Equal(t, ModeChaos, c.Mode)
	require.NoError(t, c.validate())
	for _, bad := range []func(*Config){
		func(c *Config) { c.Binary = "" },
		func(c *Config) { c.Rate = -1 },
		func(c *Config) { c.PGRestart = "sideways" },
		func(c *Config) { c.Providers = []string{"carrier-pigeon"} },
		func(c *Config) { c.Duration = 3 * time.Hour },
	} {
		cc := c
		bad(&cc)
		require.Error(t, cc.validate())
	}
}

func TestStartClusterFailsWithoutBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	// /usr/lib/postgresql may hold a server: only check the error's shape
	// when nothing is found.
	if _, _, err := findServerBinaries(); err != nil {
		_, err := StartCluster(context.Background(), t.TempDir()+"/pg")
		require.ErrorContains(t, err, "initdb")
	}
}
