package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/fhir/fhirsandbox"
	"github.com/switchboard-health/switchboard/internal/httpserver"
	googlehealthsandbox "github.com/switchboard-health/switchboard/internal/sandbox/googlehealth"
	telnyxsandbox "github.com/switchboard-health/switchboard/internal/sandbox/telnyx"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/jobs"
)

// devDefaults are applied to unset variables by `switchboard dev`: a local
// api, a sandbox Twilio, and operator credentials made up on the spot.
var devDefaults = map[string]string{
	"WORKER_QUEUES":                "sms=50,inbound=20,fhir=5,wearables=5,maintenance=2",
	"OPERATOR_USERNAME":            "operator",
	"TWILIO_ACCOUNT_SID":           "ACdev0000000000000000000000000000",
	"TWILIO_AUTH_TOKEN":            "devauthtoken0000000000000000000",
	"TWILIO_FROM_NUMBER":           "+15005550006",
	"SMS_PROVIDERS":                "twilio,telnyx",
	"TELNYX_API_KEY":               "KEYdev0000000000000000",
	"TELNYX_FROM_NUMBER":           "+15005550007",
	"GOOGLE_HEALTH_CLIENT_ID":      "dev-client",
	"GOOGLE_HEALTH_CLIENT_SECRET":  "dev-secret",
	"GOOGLE_HEALTH_WEBHOOK_SECRET": "Bearer dev-webhook-secret",
}

type devConfig struct {
	WorkerConfig  workerConfig
	API           apiConfigNoBase
	Vendors       apiVendors
	DemoInterval  time.Duration `env:"DEV_DEMO_INTERVAL, default=2s"`
	FailureRate   float64       `env:"DEV_SANDBOX_FAILURE_RATE, default=0.1"`
	CallbackDelay time.Duration `env:"DEV_SANDBOX_CALLBACK_DELAY, default=500ms"`
}

// devCmd is `switchboard dev` (make run).
type devCmd struct{}

func (devCmd) Help() string {
	return `Migrates DATABASE_URL, then runs worker, api, sandbox Twilio, Telnyx and
Google Health that answer like the vendors and post signed callbacks, and a
trickle of demo messages through switchboard.send_sms. Unset variables get
local defaults.`
}

func (devCmd) Run(e *env) error {
	ctx, stdout, stderr := e.ctx, e.stdout, e.stderr
	moved, err := pickDevAddrs(devPorts)
	if err != nil {
		return err
	}
	for k, v := range devDefaults {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	password := ""
	if os.Getenv("OPERATOR_PASSWORD_HASH") == "" {
		var b [9]byte
		_, _ = rand.Read(b[:])
		password = hex.EncodeToString(b[:])
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		os.Setenv("OPERATOR_PASSWORD_HASH", string(hash))
	}

	if os.Getenv("TOKEN_ENCRYPTION_KEYS") == "" {
		var k [32]byte
		_, _ = rand.Read(k[:])
		os.Setenv("TOKEN_ENCRYPTION_KEYS", "dev:"+base64.StdEncoding.EncodeToString(k[:]))
	}

	// The sandboxes' and the api's addresses decide the vendor base URLs
	// and PUBLIC_BASE_URL, so listen first.
	sandboxes, err := listenSandboxes()
	if err != nil {
		return err
	}
	defer sandboxes.close()
	telnyxBox := telnyxsandbox.New(telnyxsandbox.Config{APIKey: os.Getenv("TELNYX_API_KEY")}, nil)
	googleBox := googlehealthsandbox.New(googlehealthsandbox.Config{
		ClientID: os.Getenv("GOOGLE_HEALTH_CLIENT_ID"), ClientSecret: os.Getenv("GOOGLE_HEALTH_CLIENT_SECRET"),
		WebhookSecret: os.Getenv("GOOGLE_HEALTH_WEBHOOK_SECRET"),
	}, nil)
	keyset := filepath.Join(os.TempDir(), fmt.Sprintf("switchboard-dev-keyset-%d.json", os.Getpid()))
	if err := googleBox.WriteKeyset(keyset); err != nil {
		return fmt.Errorf("error writing the sandbox keyset: %w", err)
	}
	defer os.Remove(keyset)
	for k, v := range map[string]string{
		"TWILIO_API_BASE_URL":          sandboxes.url(0),
		"TELNYX_API_BASE_URL":          sandboxes.url(1),
		"TELNYX_PUBLIC_KEY":            telnyxBox.PublicKeyBase64(),
		"GOOGLE_HEALTH_API_BASE_URL":   sandboxes.url(2) + "/v4",
		"GOOGLE_OAUTH_AUTH_URL":        sandboxes.url(2) + "/o/oauth2/v2/auth",
		"GOOGLE_OAUTH_TOKEN_URL":       sandboxes.url(2) + "/token",
		"GOOGLE_OAUTH_REVOKE_URL":      sandboxes.url(2) + "/revoke",
		"GOOGLE_HEALTH_WEBHOOK_KEYSET": keyset,
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}

	// The api's address decides PUBLIC_BASE_URL, so listen first.
	apiLn, err := net.Listen("tcp", os.Getenv("API_ADDR"))
	if err != nil {
		return fmt.Errorf("error listening for the api: %w", err)
	}
	defer apiLn.Close()
	if os.Getenv("PUBLIC_BASE_URL") == "" {
		os.Setenv("PUBLIC_BASE_URL", "http://"+apiLn.Addr().String())
	}

	var cfg devConfig
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	logger, err := newLogger(cfg.WorkerConfig.Base.Log, stderr)
	if err != nil {
		return err
	}
	if cfg.WorkerConfig.Base.DatabaseURL == "" {
		return usageError{msg: "DATABASE_URL is not set (make run provides one)"}
	}
	applied, err := database.Migrate(ctx, cfg.WorkerConfig.Base.database(), database.Up, logger)
	if err != nil {
		return err
	}
	logger.InfoContext(ctx, "migrated", slog.Int("applied", len(applied)))

	sandbox := twiliosandbox.New(twiliosandbox.Config{
		AccountSID:    cfg.WorkerConfig.Twilio.AccountSID,
		AuthToken:     cfg.WorkerConfig.Twilio.AuthToken,
		CallbackDelay: cfg.CallbackDelay,
		FailureRate:   cfg.FailureRate,
	}, logger.With(slog.String("component", "sandbox_twilio")))

	stopTracing, err := startTracing(ctx, "switchboard-dev")
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := openPool(ctx, cfg.WorkerConfig.Base, cfg.WorkerConfig.Worker.DBMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()

	// A sandbox EHR (Medplum's FHIR router on Node) so pushes visibly land
	// somewhere. Without Node the demo runs SMS only.
	ehrURL := ""
	if ehr, err := fhirsandbox.Start(ctx); err != nil {
		logger.WarnContext(ctx, "sandbox EHR not started; FHIR pushes are skipped in this demo", slog.String("error", err.Error()))
	} else {
		defer ehr.Stop()
		if _, err := fhir.AddDemoEndpoint(ctx, pool, ehr.BaseURL); err != nil {
			return fmt.Errorf("error adding the sandbox EHR endpoint: %w", err)
		}
		ehrURL = ehr.BaseURL
	}
	w, err := newWorker(ctx, cfg.WorkerConfig, pool, logger)
	if err != nil {
		return err
	}
	if err := cfg.Vendors.apply(&cfg.API.API, pool, logger); err != nil {
		return err
	}
	registerOpsMetrics(pool)
	srv, err := newAPIServer(cfg.API.API, pool, logger)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	w.start(g, gctx, cfg.WorkerConfig, pool, logger)
	g.Go(func() error { return httpserver.ServeListener(gctx, apiLn, srv.Handler(), logger) })
	for i, h := range []http.Handler{sandbox, telnyxBox, googleBox} {
		g.Go(func() error { return httpserver.ServeListener(gctx, sandboxes.ln[i], h, logger) })
	}
	g.Go(func() error { sandbox.Run(gctx); return nil })
	g.Go(func() error { return telnyxBox.Run(gctx) })
	g.Go(func() error { return demoTraffic(gctx, pool, cfg.DemoInterval, logger) })
	g.Go(func() error { return demoWearable(gctx, pool, googleBox, os.Getenv("PUBLIC_BASE_URL"), logger) })

	base := os.Getenv("PUBLIC_BASE_URL")
	fmt.Fprintf(stdout, "\nSwitchboard dev is running.\n\n")
	fmt.Fprintf(stdout, "  River UI     %s/riverui/\n", base)
	if password != "" {
		fmt.Fprintf(stdout, "  login        %s / %s\n", cfg.API.API.OperatorUsername, password)
	} else {
		fmt.Fprintf(stdout, "  login        %s / (the password behind OPERATOR_PASSWORD_HASH)\n", cfg.API.API.OperatorUsername)
	}
	fmt.Fprintf(stdout, "  api          %s (API_ADDR), metrics http://%s/metrics (API_METRICS_ADDR)\n", apiLn.Addr(), cfg.API.API.MetricsAddr)
	fmt.Fprintf(stdout, "  worker       %s (WORKER_ADDR), metrics http://%s/metrics (WORKER_METRICS_ADDR)\n", cfg.WorkerConfig.Worker.Addr, cfg.WorkerConfig.Worker.MetricsAddr)
	for _, m := range moved {
		fmt.Fprintf(stdout, "  port moved   %s\n", m)
	}
	fmt.Fprintf(stdout, "  sandboxes    Twilio %s, Telnyx %s (SMS_PROVIDERS=%s), Google Health %s\n",
		sandboxes.url(0), sandboxes.url(1), cfg.WorkerConfig.SMSProviders, sandboxes.url(2))
	fmt.Fprintf(stdout, "  messages     psql '%s' -c 'SELECT id, status, provider_message_id, updated_at FROM switchboard.messages ORDER BY id DESC LIMIT 10'\n", cfg.WorkerConfig.Base.DatabaseURL)
	if ehrURL != "" {
		fmt.Fprintf(stdout, "  sandbox EHR  %s (try %s/Patient and %s/Observation)\n", ehrURL, ehrURL, ehrURL)
	}
	fmt.Fprintf(stdout, "  demo         one message every %s through switchboard.send_sms, and a patient with a heart rate\n", cfg.DemoInterval)
	fmt.Fprintf(stdout, "               through upsert_patient/record_observation; a Google Health account connects and\n")
	fmt.Fprintf(stdout, "               syncs (switchboard.device_connections, observations source google_health); Ctrl-C stops\n\n")

	return g.Wait()
}

// devPort is an address dev listens on and its default.
type devPort struct{ name, def string }

// devPorts are dev's listening addresses. The metrics defaults are those of
// api.Config and worker.Config.
var devPorts = []devPort{
	{"API_ADDR", "127.0.0.1:8080"}, {"WORKER_ADDR", "127.0.0.1:8081"},
	{"API_METRICS_ADDR", "127.0.0.1:9090"}, {"WORKER_METRICS_ADDR", "127.0.0.1:9091"},
}

// pickDevAddrs sets each unset variable of ports to its default, or to a
// free loopback port when the default is taken (a second checkout's
// make run), and says which moved. A variable the user set is kept as is.
func pickDevAddrs(ports []devPort) ([]string, error) {
	var moved []string
	for _, p := range ports {
		if os.Getenv(p.name) != "" {
			continue
		}
		addr := p.def
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
		} else {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("error finding a free port for %s: %w", p.name, err)
			}
			addr = ln.Addr().String()
			ln.Close()
			moved = append(moved, fmt.Sprintf("%s=%s (%s is taken)", p.name, addr, p.def))
		}
		if err := os.Setenv(p.name, addr); err != nil {
			return nil, err
		}
	}
	return moved, nil
}

// apiConfigNoBase is the api's configuration without the base fields the
// worker's configuration already carries.
type apiConfigNoBase struct {
	API api.Config
}

// demoTraffic enqueues a demo message every interval, the way an app does:
// a domain write and switchboard.send_sms in one transaction.
func demoTraffic(ctx context.Context, pool *pgxpool.Pool, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	run := time.Now().UTC().Format("20060102T150405")
	for n := 1; ; n++ {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			patient := fmt.Sprintf("demo-patient-%d", n%50)
			if _, err := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{
				ExternalRef: patient, GivenName: "Demo", FamilyName: fmt.Sprintf("Patient %d", n%50), Gender: "unknown",
			}); err != nil {
				return err
			}
			if _, err := jobs.RecordObservation(ctx, tx, jobs.RecordObservationParams{
				PatientExternalRef: patient, Kind: "heart_rate", Value: float64(60 + n%40), Unit: "/min",
				EffectiveStart: time.Now().Truncate(time.Second),
			}); err != nil {
				return err
			}
			id, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{
				IdempotencyKey: fmt.Sprintf("demo-%s-%d", run, n),
				To:             fmt.Sprintf("+1202555%04d", n%10000),
				Body:           fmt.Sprintf("Switchboard demo reminder #%d: your appointment is tomorrow at 9:00.", n),
				PatientRef:     patient,
			})
			if err == nil {
				logger.InfoContext(ctx, "demo message enqueued", slog.Int64("message_id", id))
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			logger.ErrorContext(ctx, "demo enqueue failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// devSandboxes are the listeners of the sandbox Twilio, Telnyx and Google
// Health, on free loopback ports.
type devSandboxes struct{ ln []net.Listener }

func listenSandboxes() (*devSandboxes, error) {
	s := &devSandboxes{}
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.close()
			return nil, fmt.Errorf("error listening for a sandbox: %w", err)
		}
		s.ln = append(s.ln, ln)
	}
	return s, nil
}

func (s *devSandboxes) url(i int) string { return "http://" + s.ln[i].Addr().String() }

func (s *devSandboxes) close() {
	for _, ln := range s.ln {
		ln.Close()
	}
}

// demoWearable connects a demo patient's Google Health account the way a
// patient would (a signed connect link, consent at the sandbox, callback)
// and then announces new heart-rate data every minute, as Google's
// webhooks do.
func demoWearable(ctx context.Context, pool *pgxpool.Pool, box *googlehealthsandbox.Server, base string, logger *slog.Logger) error {
	const user = "dev-user"
	box.AddUser(googlehealthsandbox.User{HealthUserID: user, TimeZone: "America/New_York"})
	box.DemoData(user, 3, time.Now())
	var link string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := jobs.UpsertPatient(ctx, tx, jobs.UpsertPatientParams{ExternalRef: "demo-wearer", GivenName: "Demo", FamilyName: "Wearer", Gender: "unknown"}); err != nil {
			return err
		}
		var err error
		link, err = jobs.WearablesConnectLink(ctx, tx, "demo-wearer", 30*time.Minute)
		return err
	})
	if err != nil {
		logger.WarnContext(ctx, "demo wearable not connected", slog.String("error", err.Error()))
		return nil
	}
	if status, _, err := box.SimulateConsent(ctx, base+"/oauth/google-health/start?link="+url.QueryEscape(link)); err != nil || status >= 400 {
		logger.WarnContext(ctx, "demo wearable consent failed", slog.Int("status", status), slog.Any("error", err))
		return nil
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			box.DemoData(user, 1, now)
			if _, err := box.Notify(ctx, base+"/webhooks/google-health",
				googlehealthsandbox.Notification(user, "UPSERT", "heart-rate", now.Add(-time.Hour), now)); err != nil && ctx.Err() == nil {
				logger.WarnContext(ctx, "demo notification failed", slog.String("error", err.Error()))
			}
		}
	}
}
