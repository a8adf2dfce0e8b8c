package api_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-health/switchboard/internal/api"
)

// BenchmarkLatencyUnderPasswordGuessing measures /healthz and the Twilio
// status webhook (signed, stored, a job enqueued) over real TCP, p50 and
// p99, first idle and then while 12 goroutines guess the operator password
// on /status as fast as the api answers, and reports the ratios to idle in
// the same run. The password hash has bcrypt's default cost (10), as
// htpasswd -B makes it. A control phase runs the same 12 loops on /status
// without credentials (401 before any check): the ratio of guessing to it
// is what password checking adds beyond the request volume. The loops run
// in this process, so on a small machine they take CPU from the server
// too, as an attacker on the same host would. Two guessing loads:
//
//   - OneSource: every guess from one address; the lockout stops it after
//     OPERATOR_LOGIN_FAILURES_PER_IP tries, then every guess is a 429
//     without a password check.
//   - ManySources: every guess from a new address and a new username (the
//     api trusts the benchmark's loopback as a proxy, and each guess names
//     another X-Forwarded-For client), so no lockout applies and every guess
//     that finds the password check free costs a bcrypt: the worst case,
//     held to OPERATOR_BCRYPT_CONCURRENCY (1) check at a time.
//
// Run it alone (it measures latency): go test -run '^$' -bench
// LatencyUnderPasswordGuessing -benchtime 1x ./internal/api/
func BenchmarkLatencyUnderPasswordGuessing(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	for _, many := range []bool{false, true} {
		name := "OneSource"
		if many {
			name = "ManySources"
		}
		b.Run(name, func(b *testing.B) {
			bundle := setup(b, func(c *api.Config) {
				c.OperatorPasswordHash = api.Secret(hash)
				c.TrustedProxies = api.Proxies{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
			})
			srv := httptest.NewServer(bundle.handler)
			b.Cleanup(srv.Close)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
			b.Cleanup(client.CloseIdleConnections)
			const samples = 400
			var idle, control, loaded latencies
			var guesses, unauthenticated guessCounts
			var seq atomic.Int64
			under := func(l *latencies, mode guessMode, counts *guessCounts) {
				stop := guess(client, srv.URL, 12, mode, counts)
				time.Sleep(500 * time.Millisecond) // let the loops reach a steady state
				l.add(measure(b, client, srv.URL, samples, &seq))
				stop()
			}
			mode := oneSource
			if many {
				mode = manySources
			}
			for range b.N {
				idle.add(measure(b, client, srv.URL, samples, &seq))
				under(&control, noPassword, &unauthenticated)
				under(&loaded, mode, &guesses)
			}
			report := func(route string, idle, control, loaded []time.Duration) {
				ip50, ip99 := percentile(idle, 50), percentile(idle, 99)
				cp50, cp99 := percentile(control, 50), percentile(control, 99)
				lp50, lp99 := percentile(loaded, 50), percentile(loaded, 99)
				b.ReportMetric(ms(ip50), route+"_idle_p50_ms")
				b.ReportMetric(ms(ip99), route+"_idle_p99_ms")
				b.ReportMetric(ms(cp50), route+"_nopassword_p50_ms")
				b.ReportMetric(ms(cp99), route+"_nopassword_p99_ms")
				b.ReportMetric(ms(lp50), route+"_guessing_p50_ms")
				b.ReportMetric(ms(lp99), route+"_guessing_p99_ms")
				b.ReportMetric(float64(lp50)/float64(ip50), route+"_p50_ratio")
				b.ReportMetric(float64(lp99)/float64(ip99), route+"_p99_ratio")
				b.ReportMetric(float64(lp50)/float64(cp50), route+"_p50_vs_nopassword")
				b.ReportMetric(float64(lp99)/float64(cp99), route+"_p99_vs_nopassword")
			}
			report("healthz", idle.healthz, control.healthz, loaded.healthz)
			report("webhook", idle.webhook, control.webhook, loaded.webhook)
			b.ReportMetric(float64(guesses.checked.Load()), "guesses_checked")
			b.ReportMetric(float64(guesses.refused.Load()), "guesses_429")
			b.ReportMetric(float64(unauthenticated.total.Load()), "nopassword_requests")
			b.ReportMetric(0, "ns/op")
		})
	}
}

type latencies struct{ healthz, webhook []time.Duration }

func (l *latencies) add(o latencies) {
	l.healthz = append(l.healthz, o.healthz...)
	l.webhook = append(l.webhook, o.webhook...)
}

// measure times n requests to each route, alternating.
func measure(b *testing.B, client *http.Client, base string, n int, seq *atomic.Int64) latencies {
	b.Helper()
	var l latencies
	for range n {
		start := time.Now()
		do(b, client, mustRequest(b, http.MethodGet, base+"/healthz", ""), http.StatusOK)
		l.healthz = append(l.healthz, time.Since(start))

		form := statusForm("delivered")
		sid := fmt.Sprintf("SM%032x", seq.Add(1))
		form.Set("MessageSid", sid)
		form.Set("SmsSid", sid)
		req := mustRequest(b, http.MethodPost, base+statusPath, form.Encode())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sign(testToken, testBaseURL+statusPath, form))
		start = time.Now()
		do(b, client, req, http.StatusOK)
		l.webhook = append(l.webhook, time.Since(start))
	}
	return l
}

type guessCounts struct{ checked, refused, total atomic.Int64 }

type guessMode int

const (
	noPassword  guessMode = iota // /status without credentials: the control
	oneSource                    // wrong passwords from the benchmark's address
	manySources                  // wrong passwords, each from a new client behind the trusted proxy
)

// guess starts workers requesting /status in mode until the returned stop
// is called.
func guess(client *http.Client, base string, workers int, mode guessMode, counts *guessCounts) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/status", nil)
				if err != nil {
					return
				}
				user := testUser
				if mode == manySources {
					req.Header.Set("X-Forwarded-For", netip.AddrFrom4([4]byte{100, byte(r.IntN(64)), byte(r.IntN(256)), byte(r.IntN(256))}).String())
					user = fmt.Sprintf("user%d", r.Int64())
				}
				if mode != noPassword {
					req.SetBasicAuth(user, fmt.Sprintf("guess%d", r.Int64()))
				}
				resp, err := client.Do(req)
				if err != nil {
					continue // cancelled at stop
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				counts.total.Add(1)
				switch resp.StatusCode {
				case http.StatusUnauthorized:
					counts.checked.Add(1)
				case http.StatusTooManyRequests:
					counts.refused.Add(1)
				}
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

func mustRequest(b *testing.B, method, target, body string) *http.Request {
	b.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		b.Fatal(err)
	}
	return req
}

func do(b *testing.B, client *http.Client, req *http.Request, want int) {
	b.Helper()
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d, want %d", req.Method, req.URL.Path, resp.StatusCode, want)
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
