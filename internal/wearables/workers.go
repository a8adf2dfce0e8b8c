package wearables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

func complete[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T]) error {
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("error completing job: %w", err)
	}
	return nil
}

func insert(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	if _, err := client.InsertTx(ctx, tx, args, opts); err != nil {
		return fmt.Errorf("error inserting %s job: %w", args.Kind(), err)
	}
	return nil
}

// after schedules a job d from now; nil (now) when d is not positive.
func after(d time.Duration) *river.InsertOpts {
	if d <= 0 {
		return nil
	}
	return &river.InsertOpts{ScheduledAt: time.Now().Add(d)}
}

// dayFloor is midnight UTC of t.
func dayFloor(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// dayWindows splits [from, to) into whole UTC days: windows are aligned so
// notifications, polls and backfills of the same day have the same args
// (one unique job).
func dayWindows(from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	for d := dayFloor(from); d.Before(to); d = d.Add(24 * time.Hour) {
		out = append(out, [2]time.Time{d, d.Add(24 * time.Hour)})
	}
	return out
}

type cursor struct {
	Until    *time.Time `json:"until,omitempty"`
	Disabled string     `json:"disabled,omitempty"`
}

func cursors(raw json.RawMessage) map[string]cursor {
	out := map[string]cursor{}
	_ = json.Unmarshal(raw, &out)
	return out
}

// SyncWorker works wearable_sync jobs.
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
func (w *SyncWorker) Work(ctx context.Context, job *river.Job[jobs.WearableSyncArgs]) error {
	s, a := w.s, job.Args
	conn, err := s.q.ConnectionGet(ctx, s.pool, a.ConnectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("connection %d does not exist", a.ConnectionID))
	}
	if err != nil {
		return fmt.Errorf("error loading connection: %w", err)
	}
	if (conn.Status != "active" && conn.Status != "error") || conn.ExternalUserID == nil || cursors(conn.Cursors)[a.DataType].Disabled != "" {
		return nil // syncs stop until the patient reconnects
	}
	kind, ok := googlehealth.KindOf(a.DataType)
	if !ok {
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("data type %q is not read by switchboard", a.DataType))
	}
	if s.dest != nil {
		if err := s.dest.Ready(); err != nil {
			return resilience.Snooze(ctx, job.JobRow, err, w.unavailableLimit)
		}
	}
	user := *conn.ExternalUserID
	token, err := s.AccessToken(ctx, conn.ID, "")
	if errors.Is(err, ErrNeedsReauth) || errors.Is(err, errInactive) {
		return nil
	}
	if err != nil {
		return w.failed(ctx, job, conn, err)
	}

	// get runs one read: per-user limit, resilience policies, and one
	// refresh on a 401.
	get := func(fn func(ctx context.Context, token string) error) error {
		for attempt := 0; ; attempt++ {
			if s.limiter != nil {
				wait, err := s.limiter.Take(ctx, googlehealth.Provider+":"+user, s.userLimit)
				if err != nil {
					return fmt.Errorf("error applying rate limit: %w", err)
				}
				if wait > 0 {
					return river.JobSnooze(wait)
				}
			}
			err := s.call(ctx, func(ctx context.Context) error { return fn(ctx, token) })
			if googlehealth.ClassOf(err) != googlehealth.ClassUnauthorized || attempt > 0 {
				return err
			}
			// The token was refused before its expiry: refresh once.
			token, err = s.AccessToken(ctx, conn.ID, token)
			if err != nil {
				return err
			}
		}
	}

	var ms []Measurement
	if a.DataType == googlehealth.TypeSteps {
		loc := time.UTC
		if conn.TimeZone != nil {
			if l, err := time.LoadLocation(*conn.TimeZone); err == nil {
				loc = l
			}
		}
		start := googlehealth.DateOf(a.Start.In(loc))
		end := googlehealth.DateOf(a.End.Add(-time.Nanosecond).In(loc).AddDate(0, 0, 1))
		var pts []googlehealth.RollupPoint
		err = get(func(ctx context.Context, token string) error {
			var err error
			pts, err = s.api.DailyRollUp(ctx, token, user, a.DataType, start, end)
			return err
		})
		for _, p := range pts {
			if m, ok := FromGoogleDailySteps(user, p, loc); ok {
				ms = append(ms, m)
			}
		}
	} else {
		filter := googlehealth.Filter(a.DataType, a.Start, a.End)
		size := googlehealth.MaxPageSize
		if kind == googlehealth.KindSession {
			size = 25
		}
		pageToken := ""
		for pages := 0; err == nil; pages++ {
			var page googlehealth.Page
			err = get(func(ctx context.Context, token string) error {
				var err error
				page, err = s.api.ListDataPoints(ctx, token, user, a.DataType, filter, pageToken, size)
				return err
			})
			for _, p := range page.DataPoints {
				if m, ok := FromGoogle(user, a.DataType, p); ok {
					ms = append(ms, m)
				}
			}
			if page.NextPageToken == "" || pages > 1000 {
				break
			}
			pageToken = page.NextPageToken
		}
	}
	if err != nil {
		return w.readFailed(ctx, job, conn, err)
	}

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
			seen := map[string]bool{}
			for _, m := range ms {
				seen[m.SourceID] = true
			}
			kindName := ""
			if len(ms) > 0 {
				kindName = ms[0].Kind
			} else {
				kindName = kindOfType(a.DataType)
			}
			stored, err := s.q.SamplesInWindow(ctx, tx, db.SamplesInWindowParams{
				ConnectionID: conn.ID, Kind: kindName, WindowStart: a.Start, WindowEnd: a.End, Source: SourceGoogle})
			if err != nil {
				return err
			}
			var gone []string
			prefix := gsource(user, a.DataType)
			for _, sid := range stored {
				if !seen[sid] && len(sid) > len(prefix) && sid[:len(prefix)] == prefix {
					gone = append(gone, sid)
				}
			}
			h, err := s.markDeleted(ctx, tx, conn.ID, SourceGoogle, gone)
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

// readFailed decides the outcome of a failed read, in one place.
func (w *SyncWorker) readFailed(ctx context.Context, job *river.Job[jobs.WearableSyncArgs], conn db.SwitchboardDeviceConnection, err error) error {
	s := w.s
	var snooze *river.JobSnoozeError
	var ue *resilience.UnavailableError
	switch {
	case errors.As(err, &snooze):
		return err
	case errors.As(err, &ue):
		return resilience.Snooze(ctx, job.JobRow, ue, w.unavailableLimit)
	case errors.Is(err, ErrNeedsReauth), errors.Is(err, errInactive):
		return nil
	}
	var ge *googlehealth.Error
	errors.As(err, &ge)
	switch googlehealth.ClassOf(err) {
	case googlehealth.ClassUnauthorized, googlehealth.ClassGone:
		// Refused even with a fresh token: the patient revoked access.
		refreshFailures.WithLabelValues(googlehealth.Provider).Inc()
		if err := s.commitReauth(ctx, conn.ID, "access_revoked"); !errors.Is(err, ErrNeedsReauth) {
			return err
		}
		return nil
	case googlehealth.ClassPermissionDenied:
		reason := "permission_denied"
		if err := s.q.ConnectionDisableType(ctx, s.pool, db.ConnectionDisableTypeParams{ID: conn.ID, DataType: job.Args.DataType, Reason: reason}); err != nil {
			return err
		}
		s.logger.WarnContext(ctx, "data type not granted: disabled", slog.Int64("connection_id", conn.ID), slog.String("data_type", job.Args.DataType))
		return nil
	case googlehealth.ClassThrottled:
		wait := 30 * time.Second
		if ge != nil && ge.RetryAfter > wait {
			wait = ge.RetryAfter
		}
		return river.JobSnooze(wait)
	case googlehealth.ClassNotLinked:
		if _, err := s.q.ConnectionSyncFailed(ctx, s.pool, db.ConnectionSyncFailedParams{ID: conn.ID, Class: ptr(string(googlehealth.ClassNotLinked)), ErrorThreshold: 1}); err != nil {
			return err
		}
		return nil
	case googlehealth.ClassPermanent:
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("error reading google health: %w", err))
	}
	return w.failed(ctx, job, conn, err)
}

// failed counts a retryable failure on the connection (backoff, then
// error state) and lets River retry.
func (w *SyncWorker) failed(ctx context.Context, job *river.Job[jobs.WearableSyncArgs], conn db.SwitchboardDeviceConnection, err error) error {
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

// BackfillWorker works wearable_backfill jobs.
type BackfillWorker struct {
	river.WorkerDefaults[jobs.WearableBackfillArgs]
	s *Service
}

// Work enqueues day syncs from each type's cursor (or the backfill horizon).
func (w *BackfillWorker) Work(ctx context.Context, job *river.Job[jobs.WearableBackfillArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGetForUpdate(ctx, tx, job.Args.ConnectionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		if conn.Status != "active" {
			return complete(ctx, tx, job)
		}
		now := s.now()
		horizon := dayFloor(now.AddDate(0, 0, -s.cfg.BackfillDays))
		cur := cursors(conn.Cursors)
		i := 0
		for _, t := range s.cfg.DataTypes {
			c := cur[t]
			if c.Disabled != "" {
				continue
			}
			from := horizon
			if c.Until != nil && c.Until.After(horizon) {
				from = *c.Until // resume where the connection stopped
			}
			if err := s.q.ConnectionSetCursorStart(ctx, tx, db.ConnectionSetCursorStartParams{ID: conn.ID, DataType: t, Until: dayFloor(from)}); err != nil {
				return err
			}
			// Newest first: the days a clinician looks at arrive first.
			wins := dayWindows(from, now)
			for j := len(wins) - 1; j >= 0; j-- {
				delay := time.Duration(i) * s.cfg.BackfillSpacing
				i++
				if err := insert(ctx, tx, jobs.WearableSyncArgs{ConnectionID: conn.ID, DataType: t, Start: wins[j][0], End: wins[j][1]},
					after(delay)); err != nil {
					return err
				}
			}
		}
		return complete(ctx, tx, job)
	})
}

// NotificationWorker works wearable_notification jobs.
type NotificationWorker struct {
	river.WorkerDefaults[jobs.WearableNotificationArgs]
	s *Service
}

// Work turns one stored notification into syncs.
func (w *NotificationWorker) Work(ctx context.Context, job *river.Job[jobs.WearableNotificationArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		hook, err := s.q.WebhookGetForUpdate(ctx, tx, job.Args.WebhookID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		if hook.State != "pending" {
			return complete(ctx, tx, job)
		}
		notes, err := googlehealth.ParseNotifications(hook.RawBody)
		state := "processed"
		if err != nil {
			state = "ignored"
		}
		enabled := map[string]bool{}
		for _, t := range s.cfg.DataTypes {
			enabled[t] = true
		}
		any := false
		for _, n := range notes {
			if !enabled[n.DataType] {
				continue
			}
			conn, err := s.q.ConnectionGetByExternalUser(ctx, tx, db.ConnectionGetByExternalUserParams{Provider: googlehealth.Provider, ExternalUserID: &n.HealthUserID})
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if conn.Status != "active" && conn.Status != "error" {
				continue
			}
			windows := map[[2]time.Time]bool{}
			for _, iv := range n.Intervals {
				var from, to time.Time
				switch {
				case iv.PhysicalTimeInterval != nil:
					from, to = iv.PhysicalTimeInterval.StartTime, iv.PhysicalTimeInterval.EndTime
				case iv.CivilDateTimeInterval != nil && !iv.CivilDateTimeInterval.Start.Date.IsZero():
					from = iv.CivilDateTimeInterval.Start.Date.Time(time.UTC).Add(-14 * time.Hour)
					to = iv.CivilDateTimeInterval.End.Date.Time(time.UTC).Add(14 * time.Hour)
				default:
					continue
				}
				if !to.After(from) {
					to = from.Add(time.Second)
				}
				for _, win := range dayWindows(from, to) {
					windows[win] = true
				}
			}
			if len(windows) == 0 {
				now := s.now()
				windows[[2]time.Time{dayFloor(now), dayFloor(now).Add(24 * time.Hour)}] = true
			}
			for win := range windows {
				any = true
				// A short debounce lets a burst collapse into one job.
				if err := insert(ctx, tx, jobs.WearableSyncArgs{ConnectionID: conn.ID, DataType: n.DataType, Start: win[0], End: win[1], Replace: n.Operation == "DELETE"},
					after(s.cfg.NotifyDelay)); err != nil {
					return err
				}
			}
		}
		if !any && state == "processed" {
			state = "ignored"
		}
		if err := s.q.WebhookMarkDone(ctx, tx, db.WebhookMarkDoneParams{ID: hook.ID, State: state}); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// SummarizeWorker works wearable_summarize jobs.
type SummarizeWorker struct {
	river.WorkerDefaults[jobs.WearableSummarizeArgs]
	s *Service
}

// Work summarizes a connection's closed periods.
func (w *SummarizeWorker) Work(ctx context.Context, job *river.Job[jobs.WearableSummarizeArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGet(ctx, tx, job.Args.ConnectionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		p, err := s.q.PatientGet(ctx, tx, conn.PatientID)
		if err != nil {
			return err
		}
		if _, err := s.summarize(ctx, tx, conn, p.ExternalRef); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// PollWorker works wearable_poll jobs.
type PollWorker struct {
	river.WorkerDefaults[jobs.WearablePollArgs]
	s *Service
}

// Work is the safety net: syncs for recent days, stale flags, summaries.
func (w *PollWorker) Work(ctx context.Context, job *river.Job[jobs.WearablePollArgs]) error {
	s := w.s
	now := s.now()
	conns, err := s.q.ConnectionsToPoll(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("error listing connections: %w", err)
	}
	for _, conn := range conns {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			cur := cursors(conn.Cursors)
			for _, t := range s.cfg.DataTypes {
				c := cur[t]
				if c.Disabled != "" {
					continue
				}
				from := now.Add(-s.cfg.PollLookback)
				if c.Until != nil && c.Until.Before(from) && c.Until.After(now.AddDate(0, 0, -s.cfg.BackfillDays)) {
					from = *c.Until // a gap the cursor has not passed yet
				}
				for _, win := range dayWindows(from, now) {
					if err := insert(ctx, tx, jobs.WearableSyncArgs{ConnectionID: conn.ID, DataType: t, Start: win[0], End: win[1]}, nil); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stale, err := s.q.ConnectionsMarkStale(ctx, tx, now.Add(-s.cfg.StaleAfter))
		if err != nil {
			return err
		}
		for _, c := range stale {
			data, _ := json.Marshal(map[string]any{"connection_id": c.ID, "provider": c.Provider})
			if err := s.q.WearableEmitEvent(ctx, tx, db.WearableEmitEventParams{Kind: "device.stale", Subject: fmt.Sprintf("patient/%d", c.PatientID), Data: data}); err != nil {
				return err
			}
		}
		ids, err := s.q.ConnectionsWithUnsummarized(ctx, tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := insert(ctx, tx, jobs.WearableSummarizeArgs{ConnectionID: id}, nil); err != nil {
				return err
			}
		}
		return s.q.OAuthCleanup(ctx, tx)
	})
}

// RevokeWorker works wearable_revoke jobs.
type RevokeWorker struct {
	river.WorkerDefaults[jobs.WearableRevokeArgs]
	s                *Service
	unavailableLimit time.Duration
}

// Work revokes the grant at Google, then erases the tokens.
func (w *RevokeWorker) Work(ctx context.Context, job *river.Job[jobs.WearableRevokeArgs]) error {
	s := w.s
	conn, err := s.q.ConnectionGet(ctx, s.pool, job.Args.ConnectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	sealed, column := conn.RefreshTokenSealed, "refresh_token"
	if sealed == nil {
		sealed, column = conn.AccessTokenSealed, "access_token"
	}
	if sealed != nil && conn.Status == "revoked" {
		tok, err := s.open(sealed, conn.ID, column)
		if err != nil {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			return river.JobCancel(err)
		}
		err = s.call(ctx, func(ctx context.Context) error { return s.oauth.Revoke(ctx, tok) })
		var ue *resilience.UnavailableError
		if errors.As(err, &ue) {
			return resilience.Snooze(ctx, job.JobRow, ue, w.unavailableLimit)
		}
		if err != nil {
			return fmt.Errorf("error revoking google token: %w", err)
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if conn.Status == "revoked" {
			if err := s.q.ConnectionClearTokens(ctx, tx, conn.ID); err != nil {
				return err
			}
		}
		return complete(ctx, tx, job)
	})
}

// IngestWorker works apple_health_ingest jobs.
type IngestWorker struct {
	river.WorkerDefaults[jobs.AppleHealthIngestArgs]
	s *Service
}

// Work promotes an upload's samples and applies its deletions.
func (w *IngestWorker) Work(ctx context.Context, job *river.Job[jobs.AppleHealthIngestArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		up, err := s.q.AppleUploadGetForUpdate(ctx, tx, job.Args.UploadID)
		if errors.Is(err, pgx.ErrNoRows) {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			return river.JobCancel(fmt.Errorf("apple health upload %d does not exist", job.Args.UploadID))
		}
		if err != nil {
			return err
		}
		if up.State == "processed" {
			return complete(ctx, tx, job)
		}
		ids, err := s.q.SamplesOfUpload(ctx, tx, &up.ID)
		if err != nil {
			return err
		}
		if _, err := s.promote(ctx, tx, ids); err != nil {
			return err
		}
		hf, err := s.markDeleted(ctx, tx, up.ConnectionID, SourceApple, up.Deleted)
		if err != nil {
			return err
		}
		if up.NewCount > 0 {
			if err := s.q.ConnectionSyncSucceeded(ctx, tx, db.ConnectionSyncSucceededParams{
				ID: up.ConnectionID, GotData: true, DataType: "apple_health", WindowStart: up.ReceivedAt, WindowEnd: up.ReceivedAt,
			}); err != nil {
				return err
			}
		}
		if hf || up.NewCount > 0 {
			if err := insert(ctx, tx, jobs.WearableSummarizeArgs{ConnectionID: up.ConnectionID}, after(s.cfg.SummarizeDelay)); err != nil {
				return err
			}
		}
		if err := s.q.AppleUploadMarkProcessed(ctx, tx, up.ID); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}
func ptr[T any](v T) *T { return &v }
