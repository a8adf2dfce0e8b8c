// Command screenshots shows what an operator sees in River UI for a dead
// letter and for a held job, and saves it as PNGs (make screenshots).
//
// It runs the real `switchboard worker` and `switchboard api` processes
// against a throwaway database cloned from nothing on the given server,
// with the sandbox Twilio in this process, then:
//
//   - sends a message to +15005550003, which the sandbox refuses with 21408
//     (no permission for the region: our own permanent failure), so the
//     job is cancelled into a dead letter of class permanent;
//   - pauses twilio (`switchboard destination pause twilio`) and sends
//     another message, whose job is held: snoozed with hold_reason paused;
//
// and opens each job's page in River UI (behind operator basic auth) in
// headless Chromium. It fails when the metadata it expects is not on the
// page. The database is dropped at the end.
//
// It is its own module so that chromedp stays out of the service's go.mod.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
)

func main() {
	bin := flag.String("bin", "bin/switchboard", "the switchboard binary")
	dbURL := flag.String("db", os.Getenv("DATABASE_URL"), "a PostgreSQL URL whose user may CREATE DATABASE; a throwaway database is made beside it")
	out := flag.String("out", "docs/screenshots", "where the PNGs go")
	chromium := flag.String("chromium", "/usr/bin/chromium", "the Chromium binary")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := run(ctx, *bin, *dbURL, *out, *chromium); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, bin, adminURL, out, chromium string) error {
	if adminURL == "" {
		return errors.New("-db (or DATABASE_URL) is not set")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	url, drop, err := throwawayDatabase(ctx, adminURL)
	if err != nil {
		return err
	}
	defer drop()

	if err := command(ctx, bin, []string{"DATABASE_URL=" + url, "LOG_LEVEL=warn"}, "migrate", "up").Run(); err != nil {
		return fmt.Errorf("error migrating: %w", err)
	}

	// The sandbox Twilio, answering like Twilio's test credentials.
	sid, token := "AC"+randHex(16), randHex(16)
	box := twiliosandbox.New(twiliosandbox.Config{AccountSID: sid, AuthToken: token, CallbackDelay: 50 * time.Millisecond}, nil)
	boxLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	boxSrv := &http.Server{Handler: box}
	go func() { _ = boxSrv.Serve(boxLn) }()
	defer boxSrv.Close()
	go func() { _ = box.Run(ctx) }()

	password := randHex(12)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	apiAddr, workerAddr := freeAddr(), freeAddr()
	env := []string{
		"DATABASE_URL=" + url,
		"API_ADDR=" + apiAddr, "PUBLIC_BASE_URL=http://" + apiAddr,
		"WORKER_ADDR=" + workerAddr, "API_METRICS_ADDR=" + freeAddr(), "WORKER_METRICS_ADDR=" + freeAddr(),
		"TWILIO_ACCOUNT_SID=" + sid, "TWILIO_AUTH_TOKEN=" + token, "TWILIO_FROM_NUMBER=+15005550006",
		"TWILIO_API_BASE_URL=http://" + boxLn.Addr().String(),
		// One provider: a paused twilio holds its jobs (with two, they fail over).
		"SMS_PROVIDERS=twilio",
		"WORKER_QUEUES=sms=10,inbound=5,maintenance=1,fhir=1",
		"OPERATOR_USERNAME=operator", "OPERATOR_PASSWORD_HASH=" + string(hash),
		"LOG_LEVEL=warn",
	}
	for _, name := range []string{"worker", "api"} {
		cmd := command(ctx, bin, env, name)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("error starting %s: %w", name, err)
		}
		defer func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}()
	}
	for _, addr := range []string{workerAddr, apiAddr} {
		if err := waitFor(ctx, "http://"+addr+"/readyz is ready", func() (bool, error) {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		}); err != nil {
			return err
		}
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	// A dead letter: 21408 is our own permanent failure (the account may not
	// send to that region), so the worker cancels the job.
	deadJob, err := sendAndWait(ctx, conn, "screenshot-dead-letter", "+15005550003", `metadata ? 'dead_letter_id'`)
	if err != nil {
		return err
	}
	// A held job: pause twilio, then send.
	if err := command(ctx, bin, []string{"DATABASE_URL=" + url, "SWITCHBOARD_ACTOR=screenshots", "LOG_LEVEL=warn"}, "destination", "pause", "twilio").Run(); err != nil {
		return fmt.Errorf("error pausing twilio: %w", err)
	}
	heldJob, err := sendAndWait(ctx, conn, "screenshot-held", "+14155550123", `metadata ->> 'hold_reason' = 'paused'`)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("operator:"+password))
	base := "http://" + apiAddr + "/riverui/jobs/"
	shots := []struct {
		file  string
		jobID int64
		want  []string // text the page must show
	}{
		{"river-ui-dead-letter.png", deadJob, []string{"dead_letter_class", "permanent", "dead_letter_subject", "message/", "dead_letter_id"}},
		{"river-ui-held-job.png", heldJob, []string{"hold_reason", "paused", "hold_destination", "twilio", "hold_until"}},
	}
	for _, s := range shots {
		path := filepath.Join(out, s.file)
		if err := screenshot(ctx, chromium, auth, fmt.Sprintf("%s%d", base, s.jobID), path, s.want); err != nil {
			return fmt.Errorf("error taking %s: %w", s.file, err)
		}
		fmt.Println("wrote", path)
	}
	return nil
}

// sendAndWait calls switchboard.send_sms as an app would and waits until the
// message's send job matches cond; it returns the job's id.
func sendAndWait(ctx context.Context, conn *pgx.Conn, key, to, cond string) (int64, error) {
	var msg int64
	if err := conn.QueryRow(ctx, `SELECT switchboard.send_sms(idempotency_key => $1, to_e164 => $2, body => 'Your appointment is confirmed.')`, key, to).Scan(&msg); err != nil {
		return 0, fmt.Errorf("error sending: %w", err)
	}
	var job int64
	err := waitFor(ctx, fmt.Sprintf("the job of message %d to match %s", msg, cond), func() (bool, error) {
		err := conn.QueryRow(ctx, `SELECT id FROM switchboard.river_job WHERE kind = 'sms_send' AND (args ->> 'message_id')::bigint = $1 AND `+cond, msg).Scan(&job)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	return job, err
}

// screenshot opens url in headless Chromium with the Authorization header,
// waits until the page shows every string of want, and saves a full-page PNG.
func screenshot(ctx context.Context, chromium, auth, url, path string, want []string) error {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // Chromium refuses its sandbox as root (CI)
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser without a deadline
		return err
	}
	tctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	if _, err := chromedp.Call(tctx, network.Enable, network.EnableParams{}); err != nil {
		return err
	}
	if _, err := chromedp.Call(tctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		return err
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.Search(`//dt[normalize-space()="Metadata"]`))); err != nil {
		return err
	}
	// The page renders in steps; wait until the metadata is on it.
	for {
		text, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			return err
		}
		if missing(text, want) == "" {
			break
		}
		select {
		case <-tctx.Done():
			return fmt.Errorf("the page never showed %q", missing(text, want))
		case <-time.After(200 * time.Millisecond):
		}
	}
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

func missing(text string, want []string) string {
	for _, w := range want {
		if !strings.Contains(text, w) {
			return w
		}
	}
	return ""
}

// throwawayDatabase creates an empty database on adminURL's server and
// returns its URL and a function that drops it.
func throwawayDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	name := "switchboard_screenshots_" + randHex(4)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("error connecting to %s: %w", redact(adminURL), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("error creating the throwaway database: %w", err)
	}
	u, err := neturl.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			log.Printf("error dropping %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			log.Printf("error dropping %s: %v", name, err)
		}
	}
	return u.String(), drop, nil
}

func command(ctx context.Context, bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}

// waitFor polls cond until it holds; the bound is against a hang, not a
// timing.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("error waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "the database URL"
	}
	return u.Redacted()
}
