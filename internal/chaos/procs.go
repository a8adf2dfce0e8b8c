package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is one switchboard process (worker or api) the run starts, kills
// and restarts. Its output goes to a log file that survives restarts.
type child struct {
	name     string
	binary   string
	args     []string
	env      []string
	logPath  string
	readyURL string

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	expectExit bool
	starts     int
	kills      int
	unexpected []string // exit descriptions of exits nobody asked for
}

// start starts the process; it returns once it is started, not ready.
func (c *child) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && !isDone(c.done) {
		return fmt.Errorf("%s is already running", c.name)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("error opening %s's log: %w", c.name, err)
	}
	cmd := exec.Command(c.binary, c.args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("error starting %s: %w", c.name, err)
	}
	done := make(chan struct{})
	c.cmd, c.done, c.expectExit = cmd, done, false
	c.starts++
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.mu.Lock()
		if !c.expectExit {
			desc := "exit 0"
			if err != nil {
				desc = err.Error()
			}
			c.unexpected = append(c.unexpected, desc)
		}
		c.mu.Unlock()
		close(done)
	}()
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	if cmd == nil || isDone(done) {
		c.mu.Unlock()
		return fmt.Errorf("%s is not running", c.name)
	}
	c.expectExit = true
	c.kills++
	c.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("error killing %s: %w", c.name, err)
	}
	<-done
	return nil
}

// stop asks the process to stop (SIGTERM) and kills it after grace.
func (c *child) stop(grace time.Duration) {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.expectExit = true
	c.mu.Unlock()
	if cmd == nil || isDone(done) {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// running reports whether the process is up.
func (c *child) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil && !isDone(c.done)
}

// exited returns the channel closed when the current process ends.
func (c *child) exited() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// waitReady polls readyURL until it answers 200, the process exits, or ctx
// ends.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	done := c.exited()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.readyURL, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (log: %s)", c.name, timeout, c.logPath)
		case <-done:
			return fmt.Errorf("%s exited before it was ready (log: %s)", c.name, c.logPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unexpectedExits returns the exits nobody asked for.
func (c *child) unexpectedExits() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.unexpected...)
}

func isDone(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
