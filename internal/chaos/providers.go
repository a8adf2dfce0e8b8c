package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/httpserver"
	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

// sent is one message a sandbox provider accepted, as the checks see it.
type sent struct {
	Provider   string
	ID         string // the provider's message id
	To, Body   string
	Callback   string // status callback / webhook URL: holds ?m=<message id>
	Status     string
	MessageID  int64 // parsed from Callback; 0 when absent
	AcceptedAt time.Time
}

// provider is one sandbox provider served in-process behind a fault
// injector.
type provider struct {
	name      string
	faults    *faulty
	handler   http.Handler
	run       func(context.Context) error
	setChaos  func(outage bool)
	refused   func() int64
	messages  func() []sent
	childEnv  func(baseURL string) map[string]string
	ln        net.Listener
	serveDone chan struct{}
}

// URL is the provider's base URL.
func (p *provider) URL() string { return "http://" + p.ln.Addr().String() }

// setOutage starts or ends a full outage: every request answered 503.
func (p *provider) setOutage(on bool) {
	p.faults.setOutage(on)
	p.setChaos(on)
}

// serve listens on a loopback port and serves until ctx ends.
func (p *provider) serve(ctx context.Context, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("error listening for the %s sandbox: %w", p.name, err)
	}
	p.ln = ln
	p.serveDone = make(chan struct{})
	go func() {
		defer close(p.serveDone)
		_ = httpserver.ServeListener(ctx, ln, p.faults, logger)
	}()
	go func() { _ = p.run(ctx) }()
	return nil
}

// Sandbox credentials: made up per run, never real ones.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// callbackDelay is the sandboxes' pause between status steps.
const callbackDelay = 200 * time.Millisecond

func newTwilio(seed int64, failureRate float64, logger *slog.Logger) *provider {
	sid, token := "AC"+randomHex(16), randomHex(16)
	sb := twiliosandbox.New(twiliosandbox.Config{
		AccountSID: sid, AuthToken: token, CallbackDelay: callbackDelay, FailureRate: failureRate, Seed: seed,
	}, logger)
	p := &provider{name: "twilio", run: sb.Run, refused: sb.Refused}
	p.faults = newFaulty(sb, seed+1,
		func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json")
		},
		func(w http.ResponseWriter, status int) {
			code := 20500
			if status == http.StatusTooManyRequests {
				code = 20429
			}
			writeJSON(w, status, map[string]any{"code": code, "message": http.StatusText(status), "status": status,
				"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code)})
		})
	p.setChaos = func(outage bool) { sb.SetChaos(twiliosandbox.Chaos{Outage: outage}) }
	p.messages = func() []sent {
		msgs := sb.Messages()
		out := make([]sent, 0, len(msgs))
		for _, m := range msgs {
			out = append(out, sent{Provider: "twilio", ID: m.SID, To: m.To, Body: m.Body, Callback: m.StatusCallback,
				Status: m.Status, MessageID: messageIDOf(m.StatusCallback), AcceptedAt: m.CreatedAt})
		}
		return out
	}
	p.childEnv = func(baseURL string) map[string]string {
		return map[string]string{
			"TWILIO_ACCOUNT_SID":  sid,
			"TWILIO_AUTH_TOKEN":   token,
			"TWILIO_FROM_NUMBER":  "+15005550006",
			"TWILIO_API_BASE_URL": baseURL,
		}
	}
	return p
}

func newTelnyx(seed int64, failureRate float64, logger *slog.Logger) *provider {
	key := "KEY" + randomHex(16)
	sb := telnyxsandbox.New(telnyxsandbox.Config{APIKey: key, CallbackDelay: callbackDelay, FailureRate: failureRate, Seed: seed,
		RecordDelay: telnyxRecordDelay}, logger)
	p := &provider{name: "telnyx", run: sb.Run, refused: sb.Refused}
	p.faults = newFaulty(sb, seed+2,
		func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/v2/messages" },
		func(w http.ResponseWriter, status int) {
			code, title := "10007", "Unexpected error"
			if status == http.StatusTooManyRequests {
				code, title = "10011", "Too many requests"
			}
			writeJSON(w, status, map[string]any{"errors": []map[string]any{{"code": code, "title": title, "detail": ""}}})
		})
	p.setChaos = func(outage bool) { sb.SetChaos(telnyxsandbox.Chaos{Outage: outage}) }
	p.messages = func() []sent {
		msgs := sb.Messages()
		out := make([]sent, 0, len(msgs))
		for _, m := range msgs {
			if m.Direction != "outbound" {
				continue
			}
			out = append(out, sent{Provider: "telnyx", ID: m.ID, To: m.To, Body: m.Text, Callback: m.WebhookURL,
				Status: m.Status, MessageID: messageIDOf(m.WebhookURL), AcceptedAt: m.CreatedAt})
		}
		return out
	}
	p.childEnv = func(baseURL string) map[string]string {
		return map[string]string{
			"TELNYX_API_KEY":      key,
			"TELNYX_FROM_NUMBER":  "+15005550007",
			"TELNYX_PUBLIC_KEY":   sb.PublicKeyBase64(),
			"TELNYX_API_BASE_URL": baseURL,
			// Below the sandbox's record delay an empty search would
			// miss copies; see telnyxRecordLag.
			"TELNYX_DETAIL_RECORD_LAG": telnyxRecordLag.String(),
		}
	}
	return p
}

// messageIDOf reads the m parameter the worker puts on every status
// callback URL (PUBLIC_BASE_URL/webhooks/<provider>…?m=<message id>).
func messageIDOf(callback string) int64 {
	u, err := url.Parse(callback)
	if err != nil {
		return 0
	}
	id, _ := strconv.ParseInt(u.Query().Get("m"), 10, 64)
	return id
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
