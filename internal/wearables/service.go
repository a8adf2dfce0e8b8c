package wearables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/secrets"
	"github.com/switchboard-health/switchboard/jobs"
)

// Inserter inserts River jobs in a transaction (*river.Client[pgx.Tx]).
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Deps are what the wearables workers and api need.
type Deps struct {
	Pool     *pgxpool.Pool
	Registry *resilience.Registry // the google_health destination is registered on it
	Limiter  *ratelimit.Limiter
	Keys     *secrets.Keyring
	Logger   *slog.Logger
	Config   Config
	// HTTPClient calls Google (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
}

// ErrNeedsReauth is returned when a connection's grant is dead: it moved to
// needs_reauth and the patient was asked to reconnect. Jobs complete on it.
var ErrNeedsReauth = errors.New("connection needs the patient's consent again")

// errInactive ends a job for a connection that is not active.
var errInactive = errors.New("connection is not active")

// Service is the wearables domain shared by the workers and the api. It is
// safe for concurrent use.
type Service struct {
	cfg       Config
	pool      *pgxpool.Pool
	q         *db.Queries
	keys      *secrets.Keyring
	oauth     *googlehealth.OAuth
	api       *googlehealth.Client
	verifier  *googlehealth.Verifier
	dest      *resilience.Destination
	limiter   *ratelimit.Limiter
	userLimit ratelimit.Limit
	logger    *slog.Logger
	now       func() time.Time
}

// newService checks deps and builds the service.
func newService(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Keys == nil {
		return nil, errors.New("wearables: Pool and Keys are required")
	}
	cfg := deps.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	limit, err := ratelimit.ParseLimit(cfg.UserRateLimit)
	if err != nil {
		return nil, fmt.Errorf("GOOGLE_HEALTH_USER_RATE_LIMIT: %w", err)
	}
	verifier, err := googlehealth.NewVerifier(cfg.Google)
	if err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, pool: deps.Pool, q: db.New(), keys: deps.Keys,
		oauth: googlehealth.NewOAuth(cfg.Google, deps.HTTPClient), api: googlehealth.NewClient(cfg.Google, deps.HTTPClient),
		verifier: verifier, limiter: deps.Limiter, userLimit: limit, logger: logger, now: time.Now,
	}
	if deps.Registry != nil {
		settings, err := resilience.LoadSettings(context.Background(), googlehealth.Provider)
		if err != nil {
			return nil, err
		}
		s.dest = deps.Registry.Register(googlehealth.Provider, settings, Outcome)
	}
	registerStaleGauge(deps.Pool)
	return s, nil
}

// Outcome tells the resilience layer which Google errors mean Google is
// failing: 5xx, timeouts and network errors; answers about our request or
// the patient's grant do not.
func Outcome(err error) resilience.Outcome {
	if googlehealth.ClassOf(err) == googlehealth.ClassRetryable {
		return resilience.Failing
	}
	return resilience.Healthy
}

// call runs fn through the google_health policies (when configured).
func (s *Service) call(ctx context.Context, fn func(context.Context) error) error {
	if s.dest == nil {
		return fn(ctx)
	}
	return s.dest.Call(ctx, true, fn)
}

func aad(connID int64, column string) []byte {
	return []byte("device_connections:" + strconv.FormatInt(connID, 10) + ":" + column)
}

// sealTokens seals and stores a connection's tokens (refresh token kept
// when the grant did not return a new one).
func (s *Service) sealTokens(ctx context.Context, tx pgx.Tx, conn db.SwitchboardDeviceConnection, tok *googlehealth.Token) error {
	access, err := s.keys.Seal([]byte(tok.AccessToken), aad(conn.ID, "access_token"))
	if err != nil {
		return err
	}
	refresh := conn.RefreshTokenSealed
	if tok.RefreshToken != "" {
		r, err := s.keys.Seal([]byte(tok.RefreshToken), aad(conn.ID, "refresh_token"))
		if err != nil {
			return err
		}
		refresh = &r
	}
	kid := s.keys.PrimaryKeyID()
	exp := tok.Expiry
	if exp.IsZero() {
		exp = s.now().Add(time.Hour)
	}
	return s.q.ConnectionSetTokens(ctx, tx, db.ConnectionSetTokensParams{
		ID: conn.ID, AccessTokenSealed: &access, RefreshTokenSealed: refresh, TokenKeyID: &kid, TokenExpiresAt: &exp,
	})
}

func (s *Service) open(sealed *string, connID int64, column string) (string, error) {
	if sealed == nil {
		return "", fmt.Errorf("connection %d has no %s", connID, column)
	}
	b, err := s.keys.Open(*sealed, aad(connID, column))
	if err != nil {
		return "", fmt.Errorf("error opening %s of connection %d: %w", column, connID, err)
	}
	return string(b), nil
}

// tokenValid reports whether the stored access token lasts another minute.
func (s *Service) tokenValid(c db.SwitchboardDeviceConnection) bool {
	return c.AccessTokenSealed != nil && c.TokenExpiresAt != nil && c.TokenExpiresAt.After(s.now().Add(time.Minute))
}

// AccessToken returns a usable access token for the connection, refreshing
// it when needed. The refresh runs under the connection's row lock (SELECT
// … FOR UPDATE), so concurrent jobs on any replica wait for it and then
// reuse its result: one refresh reaches Google. With stale set (Google
// answered 401 to it), that token is replaced even if it has not expired.
//
// A dead grant (invalid_grant) moves the connection to needs_reauth and
// enqueues one re-connect SMS in the same transaction; AccessToken then
// returns ErrNeedsReauth. Other refresh failures are returned as is.
func (s *Service) AccessToken(ctx context.Context, connID int64, stale string) (string, error) {
	conn, err := s.q.ConnectionGet(ctx, s.pool, connID)
	if err != nil {
		return "", fmt.Errorf("error loading connection: %w", err)
	}
	if conn.Status != "active" && conn.Status != "error" {
		return "", errInactive
	}
	if s.tokenValid(conn) {
		tok, err := s.open(conn.AccessTokenSealed, conn.ID, "access_token")
		if err == nil && tok != stale {
			return tok, nil
		}
	}
	var (
		result string
		reauth bool
	)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGetForUpdate(ctx, tx, connID)
		if err != nil {
			return fmt.Errorf("error locking connection: %w", err)
		}
		if conn.Status != "active" && conn.Status != "error" {
			return errInactive
		}
		if s.tokenValid(conn) {
			tok, err := s.open(conn.AccessTokenSealed, conn.ID, "access_token")
			if err == nil && tok != stale {
				result = tok // another job refreshed it while we waited
				return nil
			}
		}
		refresh, err := s.open(conn.RefreshTokenSealed, conn.ID, "refresh_token")
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		tok, err := s.oauth.Refresh(rctx, refresh)
		if errors.Is(err, googlehealth.ErrInvalidGrant) {
			refreshFailures.WithLabelValues(googlehealth.Provider).Inc()
			// Committed with the lock held: jobs waiting on it find the
			// connection needs_reauth and never call Google.
			reauth = true
			return s.needsReauth(ctx, tx, conn, "invalid_grant")
		}
		if err != nil {
			refreshFailures.WithLabelValues(googlehealth.Provider).Inc()
			return fmt.Errorf("error refreshing google token: %w", err)
		}
		if err := s.sealTokens(ctx, tx, conn, tok); err != nil {
			return fmt.Errorf("error storing refreshed token: %w", err)
		}
		result = tok.AccessToken
		return nil
	})
	if err == nil && reauth {
		return "", ErrNeedsReauth
	}
	return result, err
}

// commitReauth records needs_reauth in its own transaction, once: a
// connection already there is left alone (one SMS).
func (s *Service) commitReauth(ctx context.Context, connID int64, reason string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGetForUpdate(ctx, tx, connID)
		if err != nil {
			return err
		}
		if conn.Status == "needs_reauth" || conn.Status == "revoked" {
			return nil // another job got there first: one SMS only
		}
		return s.needsReauth(ctx, tx, conn, reason)
	})
	if err != nil {
		return fmt.Errorf("error recording needs_reauth: %w", err)
	}
	return ErrNeedsReauth
}

// needsReauth stops the connection's syncs and asks the patient, by SMS
// through the outbox (unless their number opted out), to reconnect. The
// caller holds the row lock.
func (s *Service) needsReauth(ctx context.Context, tx pgx.Tx, conn db.SwitchboardDeviceConnection, reason string) error {
	if err := s.q.ConnectionNeedsReauth(ctx, tx, db.ConnectionNeedsReauthParams{ID: conn.ID, Reason: &reason}); err != nil {
		return fmt.Errorf("error marking connection needs_reauth: %w", err)
	}
	data, _ := json.Marshal(map[string]any{"connection_id": conn.ID, "provider": conn.Provider, "reason": reason})
	if err := s.q.WearableEmitEvent(ctx, tx, db.WearableEmitEventParams{
		Kind: "device.needs_reauth", Subject: "patient/" + strconv.FormatInt(conn.PatientID, 10), Data: data,
	}); err != nil {
		return fmt.Errorf("error emitting event: %w", err)
	}
	contact, err := s.q.PatientContact(ctx, tx, conn.PatientID)
	if err != nil {
		return fmt.Errorf("error loading patient contact: %w", err)
	}
	if contact.PhoneE164 == nil || contact.OptedOut {
		s.logger.InfoContext(ctx, "no re-connect sms: no phone or opted out", slog.Int64("connection_id", conn.ID))
		return nil
	}
	body := s.cfg.ReauthSMSText
	if strings.Contains(body, "{link}") {
		link, err := s.q.ConnectLinkIssue(ctx, tx, db.ConnectLinkIssueParams{
			PatientExternalRef: contact.ExternalRef,
			Ttl:                pgtype.Interval{Microseconds: s.cfg.ReauthLinkTTL.Microseconds(), Valid: true},
		})
		if err != nil {
			return fmt.Errorf("error issuing connect link: %w", err)
		}
		body = strings.ReplaceAll(body, "{link}", s.cfg.PublicBaseURL+"/oauth/google-health/start?link="+link)
	}
	if _, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{
		IdempotencyKey: fmt.Sprintf("wearables-reauth-%d-%d", conn.ID, conn.ReauthCount+1),
		To:             *contact.PhoneE164,
		Body:           body,
		PatientRef:     contact.ExternalRef,
	}); err != nil {
		return fmt.Errorf("error enqueueing re-connect sms: %w", err)
	}
	return nil
}

func numeric(v float64) pgtype.Numeric {
	return numericText(strconv.FormatFloat(v, 'f', -1, 64))
}

// numericText is exact decimal text as a numeric (no float on the way).
func numericText(s string) pgtype.Numeric {
	var n pgtype.Numeric
	_ = n.Scan(s)
	return n
}

func numericFloat(n pgtype.Numeric) float64 {
	f, _ := n.Float64Value()
	return f.Float64
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// stored is what storing a batch did.
type stored struct {
	ids      []int64 // new or changed samples (to promote)
	new      int
	highFreq bool
	rejected int
}

// connRef is the part of a connection storing needs.
type connRef struct {
	ID, PatientID int64
}

// store normalizes and stores ms (idempotent by source and source id): a
// sample already stored is skipped, or updated when its source changed its
// value (a day's total). uploadID ties Apple samples to their upload.
func (s *Service) store(ctx context.Context, tx pgx.Tx, c connRef, ms []Measurement, uploadID *int64) (stored, error) {
	var out stored
	devices := map[string]int64{}
	now := s.now()
	for i := range ms {
		m := &ms[i]
		Assess(m, now)
		var deviceID *int64
		if m.Device != nil && m.Device.ExternalID != "" {
			id, ok := devices[m.Device.ExternalID]
			if !ok {
				var err error
				id, err = s.q.DeviceUpsert(ctx, tx, db.DeviceUpsertParams{
					PatientID: c.PatientID, Source: m.Source, ExternalID: truncate(m.Device.ExternalID, 200),
					Manufacturer: nilIfEmpty(m.Device.Manufacturer), Model: nilIfEmpty(m.Device.Model), DisplayName: nilIfEmpty(m.Device.DisplayName),
				})
				if err != nil {
					return out, fmt.Errorf("error recording device: %w", err)
				}
				devices[m.Device.ExternalID] = id
			}
			deviceID = &id
		}
		var offset *int32
		if m.UTCOffset != nil {
			o := int32(*m.UTCOffset)
			offset = &o
		}
		value := numeric(m.Value)
		switch {
		case m.Decimal != "":
			value = numericText(m.Decimal)
		case math.IsNaN(m.Value) || math.IsInf(m.Value, 0):
			value = numeric(0) // kept with its rejection reason; numeric has no NaN here
		}
		var srcValue pgtype.Numeric
		if m.SourceValue != "" {
			srcValue = numericText(m.SourceValue)
		}
		id, err := s.q.SampleInsert(ctx, tx, db.SampleInsertParams{
			ConnectionID: c.ID, PatientID: c.PatientID, Kind: m.Kind, Value: value, Unit: m.Unit,
			EffectiveStart: m.Start, EffectiveEnd: m.End, UtcOffsetSeconds: offset, Source: m.Source,
			SourceID: m.SourceID, DeviceID: deviceID, Interpretation: nilIfEmpty(m.Interpretation),
			RejectionReason: nilIfEmpty(m.Rejection), HighFrequency: m.HighFrequency, UploadID: uploadID,
			SourceValue: srcValue, SourceUnit: nilIfEmpty(m.SourceUnit),
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			samplesTotal.WithLabelValues(m.Source, "duplicate").Inc()
			if m.HighFrequency || m.Raw {
				continue
			}
			id, err = s.q.SampleUpdateValue(ctx, tx, db.SampleUpdateValueParams{
				Source: m.Source, SourceID: m.SourceID, Value: value, EffectiveEnd: m.End,
				Interpretation: nilIfEmpty(m.Interpretation), RejectionReason: nilIfEmpty(m.Rejection),
				SourceValue: srcValue, SourceUnit: nilIfEmpty(m.SourceUnit),
			})
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return out, fmt.Errorf("error updating sample: %w", err)
			}
			out.ids = append(out.ids, id)
		case err != nil:
			return out, fmt.Errorf("error storing sample: %w", err)
		default:
			out.new++
			out.ids = append(out.ids, id)
			out.highFreq = out.highFreq || m.HighFrequency
			switch {
			case m.Rejection != "":
				out.rejected++
				samplesTotal.WithLabelValues(m.Source, "rejected").Inc()
			case m.Interpretation != "":
				samplesTotal.WithLabelValues(m.Source, "flagged").Inc()
			default:
				samplesTotal.WithLabelValues(m.Source, "new").Inc()
			}
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// promote records the valid samples among ids as observations through
// switchboard.record_observation (which enqueues fhir_push in this
// transaction), with their interpretation and original offset.
func (s *Service) promote(ctx context.Context, tx pgx.Tx, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	rows, err := s.q.SamplesToPromote(ctx, tx, ids)
	if err != nil {
		return 0, fmt.Errorf("error loading samples: %w", err)
	}
	for _, r := range rows {
		obsID, err := s.q.RecordObservation(ctx, tx, db.RecordObservationParams{
			PatientExternalRef: r.PatientExternalRef, Kind: r.Kind, Value: r.Value, Unit: r.Unit,
			EffectiveStart: r.EffectiveStart, EffectiveEnd: r.EffectiveEnd, Source: r.Source, SourceID: r.SourceID,
			DeviceID: r.DeviceID,
		})
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22023" {
				// Assess mirrors record_observation's checks; a refusal
				// here is our bug, reported without the value.
				return 0, fmt.Errorf("record_observation refused sample %d (%s): %s", r.ID, r.Kind, pgErr.Message)
			}
			return 0, fmt.Errorf("error recording observation: %w", err)
		}
		if err := s.q.SampleSetObservation(ctx, tx, db.SampleSetObservationParams{ID: r.ID, ObservationID: &obsID}); err != nil {
			return 0, err
		}
		if err := s.q.ObservationSetWearableFields(ctx, tx, db.ObservationSetWearableFieldsParams{
			ID: obsID, Interpretation: r.Interpretation, UtcOffsetSeconds: r.UtcOffsetSeconds,
		}); err != nil {
			return 0, fmt.Errorf("error recording observation details: %w", err)
		}
	}
	return len(rows), nil
}

// markDeleted marks samples deleted at their source entered-in-error; their
// observations too, with the correction pushed. It returns whether a
// high-frequency period needs its summary again.
func (s *Service) markDeleted(ctx context.Context, tx pgx.Tx, connID int64, source string, sourceIDs []string) (bool, error) {
	hf := false
	for _, sid := range sourceIDs {
		row, err := s.q.SampleMarkEnteredInError(ctx, tx, db.SampleMarkEnteredInErrorParams{Source: source, SourceID: sid, ConnectionID: connID})
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return hf, fmt.Errorf("error marking sample deleted: %w", err)
		}
		hf = hf || row.HighFrequency
		if row.ObservationID != nil {
			if _, err := s.q.ObservationMarkEnteredInError(ctx, tx, *row.ObservationID); err != nil {
				return hf, fmt.Errorf("error marking observation entered-in-error: %w", err)
			}
		}
	}
	return hf, nil
}

// summarize folds the unsummarized high-frequency samples of every closed
// period of a connection into one observation per period (the mean, with
// count, min and max; flagged when any sample was abnormal).
func (s *Service) summarize(ctx context.Context, tx pgx.Tx, conn db.SwitchboardDeviceConnection, externalRef string) (int, error) {
	period := s.cfg.SummaryPeriod
	periods, err := s.q.SamplesUnsummarizedPeriods(ctx, tx, db.SamplesUnsummarizedPeriodsParams{
		PeriodSeconds: int64(period / time.Second), ConnectionID: conn.ID,
	})
	if err != nil {
		return 0, fmt.Errorf("error listing periods: %w", err)
	}
	source := SourceGoogle
	if conn.Provider == "apple_health" {
		source = SourceApple
	}
	n := 0
	for _, p := range periods {
		start, end := p.PeriodStart.UTC(), p.PeriodStart.UTC().Add(period)
		agg, err := s.q.SamplesSummarize(ctx, tx, db.SamplesSummarizeParams{ConnectionID: conn.ID, Kind: p.Kind, PeriodStart: start, PeriodEnd: end})
		if err != nil {
			return n, fmt.Errorf("error summarizing: %w", err)
		}
		sid := fmt.Sprintf("summary:%d:%s:%d:%d", conn.ID, p.Kind, start.Unix(), int64(period/time.Second))
		if agg.N == 0 {
			// Every sample of the period was deleted: correct the summary.
			old, err := s.q.ObservationFindBySource(ctx, tx, db.ObservationFindBySourceParams{Source: source, SourceID: sid})
			if err == nil {
				if _, err := s.q.ObservationMarkEnteredInError(ctx, tx, old.ID); err != nil {
					return n, err
				}
			} else if !errors.Is(err, pgx.ErrNoRows) {
				return n, err
			}
		} else {
			mean, lo, hi := numericFloat(agg.Mean), numericFloat(agg.MinValue), numericFloat(agg.MaxValue)
			mean = math.Round(mean*10) / 10
			m := Measurement{Kind: p.Kind, Value: mean, Unit: agg.Unit, Start: start, End: &end, Source: source, SourceID: sid}
			Assess(&m, s.now())
			if m.Rejection == "" {
				me := Measures[p.Kind]
				if me.FlagBelow != nil && lo < *me.FlagBelow {
					m.Interpretation = FlagLow
				}
				if me.FlagAbove != nil && hi > *me.FlagAbove {
					m.Interpretation = FlagHigh
				}
				obsID, err := s.q.RecordObservation(ctx, tx, db.RecordObservationParams{
					PatientExternalRef: externalRef, Kind: p.Kind, Value: numeric(mean), Unit: agg.Unit,
					EffectiveStart: start, EffectiveEnd: &end, Source: source, SourceID: sid,
				})
				if err != nil {
					return n, fmt.Errorf("error recording summary: %w", err)
				}
				var offset *int32
				if o, ok := agg.UtcOffsetSeconds.(int32); ok {
					offset = &o
				}
				count := agg.N
				if err := s.q.ObservationSetWearableFields(ctx, tx, db.ObservationSetWearableFieldsParams{
					ID: obsID, Interpretation: nilIfEmpty(m.Interpretation), UtcOffsetSeconds: offset,
					SummaryPeriod: pgtype.Interval{Microseconds: period.Microseconds(), Valid: true},
					SummaryCount:  &count, SummaryMin: agg.MinValue, SummaryMax: agg.MaxValue,
				}); err != nil {
					return n, err
				}
				n++
			}
		}
		if err := s.q.SamplesMarkSummarized(ctx, tx, db.SamplesMarkSummarizedParams{ConnectionID: conn.ID, Kind: p.Kind, PeriodStart: start, PeriodEnd: end}); err != nil {
			return n, err
		}
	}
	return n, nil
}
