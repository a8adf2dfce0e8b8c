package wearables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// SyncWorker works wearable_sync jobs: it reads one UTC day (or any window)
// of one data type of one connection from Google and stores what it finds.
type SyncWorker struct {
	river.WorkerDefaults[jobs.WearableSyncArgs]
	s                *Service
	unavailableLimit time.Duration
}

// Timeout bounds one sync.
func (w *SyncWorker) Timeout(*river.Job[jobs.WearableSyncArgs]) time.Duration {
	return w.s.cfg.SyncTimeout
}

// NextRetry backs off 30 s, 2 min, 8 min … capped at an hour (reads are
// idempotent; the poll covers longer outages).
func (w *SyncWorker) NextRetry(job *river.Job[jobs.WearableSyncArgs]) time.Time {
	d := 30 * time.Second << min(2*len(job.Errors), 7)
	return time.Now().Add(min(d, time.Hour))
}

// Work pulls one window of one data type. See jobs.KindWearableSync.
//
// It runs in three steps — start (may this connection be read now?), read
// (every page, through the per-user limit and the resilience policies) and
// save (one transaction that also completes the job) — and any failure
// before the save goes to outcome, the one place that decides what the job
// does about it.
func (w *SyncWorker) Work(ctx context.Context, job *river.Job[jobs.WearableSyncArgs]) error {
	r, err := w.start(ctx, job.Args)
	if err != nil {
		return w.outcome(ctx, job, r, err)
	}
	ms, err := w.read(ctx, r, job.Args)
	if err != nil {
		return w.outcome(ctx, job, r, err)
	}
	return w.save(ctx, job, r, ms)
}

// Decisions start makes before any read; outcome turns each into the job's
// result.
var (
	errConnectionGone = errors.New("connection does not exist")
	errSyncStopped    = errors.New("syncs of this connection or data type are stopped")
	errUnknownType    = errors.New("data type is not read by switchboard")
)

// rateHold: the user's request budget at Google (GOOGLE_HEALTH_USER_RATE_LIMIT)
// is spent; the job waits for the next slot.
type rateHold struct{ wait time.Duration }

func (h *rateHold) Error() string {
	return fmt.Sprintf("per-user rate limit: next slot in %s", h.wait.Round(time.Millisecond))
}

// tokenFailed: no access token could be had before the first read. It is
// counted on the connection and retried, whatever Google's answer was (a
// refresh refused during the read is classified like any read).
type tokenFailed struct{ err error }

func (e *tokenFailed) Error() string { return e.err.Error() }
func (e *tokenFailed) Unwrap() error { return e.err }

// syncRead is what every read of one sync needs: the connection, the
// Google user and the access token (replaced when Google refuses it).
type syncRead struct {
	conn  db.SwitchboardDeviceConnection
	user  string
	token string
}

// start loads the connection and checks that it may be read now: active,
// the data type known and not disabled, Google available and an access
// token at hand (refreshed when needed). The returned syncRead is nil only
// when the connection could not be loaded.
func (w *SyncWorker) start(ctx context.Context, a jobs.WearableSyncArgs) (*syncRead, error) {
	s := w.s
	conn, err := s.q.ConnectionGet(ctx, s.pool, a.ConnectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errConnectionGone
	}
	if err != nil {
		return nil, fmt.Errorf("error loading connection: %w", err)
	}
	r := &syncRead{conn: conn}
	if (conn.Status != "active" && conn.Status != "error") || conn.ExternalUserID == nil || cursors(conn.Cursors)[a.DataType].Disabled != "" {
		return r, errSyncStopped
	}
	if _, ok := googlehealth.KindOf(a.DataType); !ok {
		return r, errUnknownType
	}
	if s.dest != nil {
		if err := s.dest.Ready(); err != nil {
			return r, err
		}
	}
	r.user = *conn.ExternalUserID
	if r.token, err = s.AccessToken(ctx, conn.ID, ""); err != nil {
		return r, &tokenFailed{err: err}
	}
	return r, nil
}

// read reads the window: steps as reconciled daily totals (a phone and a
// watch are not counted twice), anything else as every page of its data
// points. Points that do not normalize are left out.
func (w *SyncWorker) read(ctx context.Context, r *syncRead, a jobs.WearableSyncArgs) ([]Measurement, error) {
	if a.DataType == googlehealth.TypeSteps {
		return w.readDailySteps(ctx, r, a)
	}
	return w.readDataPoints(ctx, r, a)
}

// readDailySteps reads the daily step totals of the civil dates the window
// touches in the patient's time zone (UTC when unknown).
func (w *SyncWorker) readDailySteps(ctx context.Context, r *syncRead, a jobs.WearableSyncArgs) ([]Measurement, error) {
	loc := time.UTC
	if r.conn.TimeZone != nil {
		if l, err := time.LoadLocation(*r.conn.TimeZone); err == nil {
			loc = l
		}
	}
	start := googlehealth.DateOf(a.Start.In(loc))
	end := googlehealth.DateOf(a.End.Add(-time.Nanosecond).In(loc).AddDate(0, 0, 1))
	var pts []googlehealth.RollupPoint
	err := w.call(ctx, r, func(ctx context.Context, token string) error {
		var err error
		pts, err = w.s.api.DailyRollUp(ctx, token, r.user, a.DataType, start, end)
		return err
	})
	if err != nil {
		return nil, err
	}
	var ms []Measurement
	for _, p := range pts {
		if m, ok := FromGoogleDailySteps(r.user, p, loc); ok {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// maxPages bounds the pages one sync follows (a server that always answers
// with a next page token cannot hold a job forever).
const maxPages = 1002

// readDataPoints follows the pages of the window's data points.
func (w *SyncWorker) readDataPoints(ctx context.Context, r *syncRead, a jobs.WearableSyncArgs) ([]Measurement, error) {
	filter := googlehealth.Filter(a.DataType, a.Start, a.End)
	size := googlehealth.MaxPageSize
	if kind, _ := googlehealth.KindOf(a.DataType); kind == googlehealth.KindSession {
		size = 25 // Google's largest page for sessions
	}
	var ms []Measurement
	pageToken := ""
	for range maxPages {
		var page googlehealth.Page
		err := w.call(ctx, r, func(ctx context.Context, token string) error {
			var err error
			page, err = w.s.api.ListDataPoints(ctx, token, r.user, a.DataType, filter, pageToken, size)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range page.DataPoints {
			if m, ok := FromGoogle(r.user, a.DataType, p); ok {
				ms = append(ms, m)
			}
		}
		if page.NextPageToken == "" {
			break
		}
		pageToken = page.NextPageToken
	}
	return ms, nil
}

// call runs one read: it takes a slot under the user's rate limit (a
// *rateHold when none is free), runs fn through the google_health
// resilience policies, and on a 401 refreshes the token once and tries
// again.
func (w *SyncWorker) call(ctx context.Context, r *syncRead, fn func(ctx context.Context, token string) error) error {
	s := w.s
	for attempt := 0; ; attempt++ {
		if s.limiter != nil {
			wait, err := s.limiter.Take(ctx, googlehealth.Provider+":"+r.user, s.userLimit)
			if err != nil {
				return fmt.Errorf("error applying rate limit: %w", err)
			}
			if wait > 0 {
				return &rateHold{wait: wait}
			}
		}
		err := s.call(ctx, func(ctx context.Context) error { return fn(ctx, r.token) })
		if googlehealth.ClassOf(err) != googlehealth.ClassUnauthorized || attempt > 0 {
			return err
		}
		// The token was refused before its expiry: refresh once.
		if r.token, err = s.AccessToken(ctx, r.conn.ID, r.token); err != nil {
			return err
		}
	}
}

// save stores the points and promotes the new ones to observations, marks
// entered-in-error what Google no longer has when the job answers a DELETE
// notification, records the sync on the connection, schedules a summary
// when high-frequency samples changed, and completes the job: one
// transaction, so a failure leaves nothing half done for River to retry.
func (w *SyncWorker) save(ctx context.Context, job *river.Job[jobs.WearableSyncArgs], r *syncRead, ms []Measurement) error {
	s, a, conn := w.s, job.Args, r.conn
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res, err := s.store(ctx, tx, connRef{ID: conn.ID, PatientID: conn.PatientID}, ms, nil)
		if err != nil {
			return err
		}
		if _, err := s.promote(ctx, tx, res.ids); err != nil {
			return err
		}
		hf := res.highFreq
		if a.Replace {
			h, err := w.markGone(ctx, tx, r, a, ms)
			if err != nil {
				return err
			}
			hf = hf || h
		}
		if err := s.q.ConnectionSyncSucceeded(ctx, tx, db.ConnectionSyncSucceededParams{
			ID: conn.ID, GotData: res.new > 0, DataType: a.DataType, WindowStart: a.Start, WindowEnd: a.End,
		}); err != nil {
			return fmt.Errorf("error recording sync: %w", err)
		}
		if hf {
			if err := insert(ctx, tx, jobs.WearableSummarizeArgs{ConnectionID: conn.ID}, after(s.cfg.SummarizeDelay)); err != nil {
				return err
			}
		}
		return complete(ctx, tx, job)
	})
}

// markGone marks deleted the window's stored samples of this user and data
// type that the read did not return: Google sends no ids of deleted points,
// so a DELETE notification's window is read again whole. It reports
// whether a high-frequency period needs its summary again.
func (w *SyncWorker) markGone(ctx context.Context, tx pgx.Tx, r *syncRead, a jobs.WearableSyncArgs, ms []Measurement) (bool, error) {
	s := w.s
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.SourceID] = true
	}
	kindName := kindOfType(a.DataType)
	if len(ms) > 0 {
		kindName = ms[0].Kind
	}
	stored, err := s.q.SamplesInWindow(ctx, tx, db.SamplesInWindowParams{
		ConnectionID: r.conn.ID, Kind: kindName, WindowStart: a.Start, WindowEnd: a.End, Source: SourceGoogle})
	if err != nil {
		return false, err
	}
	var gone []string
	prefix := gsource(r.user, a.DataType)
	for _, sid := range stored {
		if len(sid) > len(prefix) && strings.HasPrefix(sid, prefix) && !seen[sid] {
			gone = append(gone, sid)
		}
	}
	return s.markDeleted(ctx, tx, r.conn.ID, SourceGoogle, gone)
}

// kindOfType is the observation kind a Google data type becomes.
func kindOfType(dataType string) string {
	switch dataType {
	case googlehealth.TypeHeartRate:
		return "heart_rate"
	case googlehealth.TypeDailyRestingHeartRate:
		return "resting_heart_rate"
	case googlehealth.TypeWeight:
		return "weight"
	case googlehealth.TypeSleep:
		return "sleep_duration"
	case googlehealth.TypeDailyOxygenSaturation, googlehealth.TypeOxygenSaturation:
		return "spo2"
	default:
		return "steps"
	}
}

// outcome decides, in one place, what a sync that failed before its save
// does (DESIGN.md's outcome classes): r is nil when the connection could
// not be loaded.
//
//   - nothing to do (connection stopped or needs the patient, type
//     disabled): complete;
//   - our own permanent failure (connection gone, unknown type, a request
//     Google calls wrong): cancel into a dead letter;
//   - the patient revoked access: needs_reauth and complete; a scope not
//     granted: disable the type and complete; no Google Health profile:
//     record it on the connection and complete;
//   - throttled, rate-limited or Google unavailable: snooze, no attempt
//     spent;
//   - anything else: count the failure on the connection and let River
//     back off.
func (w *SyncWorker) outcome(ctx context.Context, job *river.Job[jobs.WearableSyncArgs], r *syncRead, err error) error {
	s, a := w.s, job.Args
	var (
		ue   *resilience.UnavailableError
		hold *rateHold
		tf   *tokenFailed
	)
	switch {
	case errors.Is(err, errConnectionGone):
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("connection %d does not exist", a.ConnectionID))
	case r == nil:
		return err
	case errors.Is(err, errSyncStopped), errors.Is(err, ErrNeedsReauth), errors.Is(err, errInactive):
		return nil // syncs stop until the patient reconnects
	case errors.Is(err, errUnknownType):
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("data type %q is not read by switchboard", a.DataType))
	case errors.As(err, &ue):
		return resilience.Snooze(ctx, job.JobRow, ue, w.unavailableLimit)
	case errors.As(err, &hold):
		return resilience.HoldFor(ctx, resilience.HoldRateLimit, googlehealth.Provider, hold.wait)
	case errors.As(err, &tf):
		return w.failed(ctx, r.conn, tf.err)
	}
	var ge *googlehealth.Error
	errors.As(err, &ge)
	switch googlehealth.ClassOf(err) {
	case googlehealth.ClassUnauthorized, googlehealth.ClassGone:
		// Refused even with a fresh token: the patient revoked access.
		refreshFailures.WithLabelValues(googlehealth.Provider).Inc()
		if err := s.commitReauth(ctx, r.conn.ID, "access_revoked"); !errors.Is(err, ErrNeedsReauth) {
			return err
		}
		return nil
	case googlehealth.ClassPermissionDenied:
		if err := s.q.ConnectionDisableType(ctx, s.pool, db.ConnectionDisableTypeParams{ID: r.conn.ID, DataType: a.DataType, Reason: "permission_denied"}); err != nil {
			return err
		}
		s.logger.WarnContext(ctx, "data type not granted: disabled", slog.Int64("connection_id", r.conn.ID), slog.String("data_type", a.DataType))
		return nil
	case googlehealth.ClassThrottled:
		wait := 30 * time.Second
		if ge != nil && ge.RetryAfter > wait {
			wait = ge.RetryAfter
		}
		return resilience.HoldFor(ctx, resilience.HoldThrottled, googlehealth.Provider, wait)
	case googlehealth.ClassNotLinked:
		if _, err := s.q.ConnectionSyncFailed(ctx, s.pool, db.ConnectionSyncFailedParams{ID: r.conn.ID, Class: ptr(string(googlehealth.ClassNotLinked)), ErrorThreshold: 1}); err != nil {
			return err
		}
		return nil
	case googlehealth.ClassPermanent:
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("error reading google health: %w", err))
	}
	return w.failed(ctx, r.conn, err)
}

// failed counts a retryable failure on the connection (after
// ErrorThreshold in a row it moves to error) and lets River retry.
func (w *SyncWorker) failed(ctx context.Context, conn db.SwitchboardDeviceConnection, err error) error {
	row, dbErr := w.s.q.ConnectionSyncFailed(ctx, w.s.pool, db.ConnectionSyncFailedParams{
		ID: conn.ID, Class: ptr(string(googlehealth.ClassOf(err))), ErrorThreshold: int32(w.s.cfg.ErrorThreshold),
	})
	if dbErr != nil {
		return errors.Join(err, dbErr)
	}
	if row.Status == "error" {
		w.s.logger.WarnContext(ctx, "connection moved to error after consecutive failures",
			slog.Int64("connection_id", conn.ID), slog.Int("failures", int(row.ConsecutiveFailures)))
	}
	return fmt.Errorf("error syncing google health: %w", err)
}
