package wearables

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/applehealth"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/jobs"
)

// Errors of the connect flow, for the api to answer. None holds PHI.
var (
	ErrLinkInvalid   = errors.New("connect link is unknown or expired")
	ErrLinkUsed      = errors.New("connect link was already used")
	ErrBrowser       = errors.New("oauth callback is not from the browser that started the consent")
	ErrAccountSwap   = errors.New("a different Google account is already connected for this patient")
	ErrStateMissing  = errors.New("oauth state is missing")
	ErrStateUnknown  = errors.New("oauth state does not match a started consent")
	ErrStateExpired  = errors.New("oauth state has expired")
	ErrStateReused   = errors.New("oauth state was already used")
	ErrConsentDenied = errors.New("the patient did not grant access")
	ErrCodeMissing   = errors.New("authorization code is missing")
	ErrExchange      = errors.New("google refused the authorization code")
	ErrIdentity      = errors.New("google health identity lookup failed")
	ErrAccountInUse  = errors.New("this Google account is connected to another patient")
	ErrUploadToken   = errors.New("upload token is unknown or revoked")
	ErrNotConfigured = errors.New("google health is not configured")
)

// API is what the api's wearable routes call. It is safe for concurrent use.
type API struct{ s *Service }

// NewAPI returns the api side of wearables. It returns an error for invalid
// deps or configuration.
func NewAPI(deps Deps) (*API, error) {
	s, err := newService(deps)
	if err != nil {
		return nil, err
	}
	return &API{s: s}, nil
}

// UploadMaxBytes is the Apple Health body limit.
func (a *API) UploadMaxBytes() int64 { return a.s.cfg.UploadMaxBytes }

// Verifier checks Google Health notifications.
func (a *API) Verifier() *googlehealth.Verifier { return a.s.verifier }

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func (a *API) redirectURI() string { return a.s.cfg.PublicBaseURL + "/oauth/google-health/callback" }

// CheckLink reports, without spending it, whether a connect link can still
// start a consent (the GET page that link previews also fetch): nil,
// ErrLinkUsed, or ErrLinkInvalid (unknown or expired).
func (a *API) CheckLink(ctx context.Context, link string) error {
	if link == "" || len(link) > 200 {
		return ErrLinkInvalid
	}
	st, err := a.s.q.ConnectLinkPeek(ctx, a.s.pool, hash(link))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrLinkInvalid
	case err != nil:
		return err
	case st.Used:
		return ErrLinkUsed
	case st.Expired:
		return ErrLinkInvalid
	}
	return nil
}

// BrowserCookieName is the cookie that binds a started consent to the
// browser that started it: __Host- (Secure, Path=/, no Domain) when
// PUBLIC_BASE_URL is https, a plain name for http development setups.
func (a *API) BrowserCookieName() string {
	if strings.HasPrefix(a.s.cfg.PublicBaseURL, "https://") {
		return "__Host-switchboard_oauth"
	}
	return "switchboard_oauth"
}

// browserAAD binds the sealed cookie to its use.
var browserAAD = []byte("oauth_browser:v1")

// StartURL spends a connect link (single use) and returns the Google
// consent URL, with a fresh single-use state and PKCE verifier stored (the
// verifier sealed), and the value of the browser cookie: the state's hash
// sealed with the keyring, which the callback requires. It returns
// ErrLinkUsed for a link already spent, ErrLinkInvalid for an unknown or
// expired one.
func (a *API) StartURL(ctx context.Context, link string) (authURL, browserCookie string, err error) {
	s := a.s
	if !s.cfg.Google.Configured() {
		return "", "", ErrNotConfigured
	}
	if link == "" || len(link) > 200 {
		return "", "", ErrLinkInvalid
	}
	var stateRaw [32]byte
	if _, err := rand.Read(stateRaw[:]); err != nil {
		return "", "", err
	}
	state := base64.RawURLEncoding.EncodeToString(stateRaw[:])
	sh := hash(state)
	verifier := googlehealth.NewCodeVerifier()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		l, err := s.q.ConnectLinkUse(ctx, tx, hash(link))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLinkInvalid
		}
		if err != nil {
			return err
		}
		sealed, err := s.keys.Seal([]byte(verifier), []byte("oauth_states:"+hex.EncodeToString(sh)+":code_verifier"))
		if err != nil {
			return err
		}
		if err := s.q.OAuthStateInsert(ctx, tx, db.OAuthStateInsertParams{
			StateHash: sh, PatientID: l.PatientID, Provider: l.Provider, CodeVerifierSealed: sealed,
			RedirectUri: a.redirectURI(), ExpiresAt: s.now().Add(s.cfg.StateTTL),
		}); err != nil {
			return err
		}
		authURL = s.oauth.AuthCodeURL(state, verifier, a.redirectURI())
		return nil
	})
	if errors.Is(err, ErrLinkInvalid) {
		if cerr := a.CheckLink(ctx, link); errors.Is(cerr, ErrLinkUsed) {
			return "", "", ErrLinkUsed
		}
		return "", "", ErrLinkInvalid
	}
	if err != nil {
		return "", "", err
	}
	browserCookie, err = s.keys.Seal([]byte(hex.EncodeToString(sh)), browserAAD)
	if err != nil {
		return "", "", err
	}
	return authURL, browserCookie, nil
}

// sameBrowser reports whether the browser cookie was issued with state.
func (a *API) sameBrowser(browserCookie string, stateHash []byte) bool {
	if browserCookie == "" || len(browserCookie) > 512 {
		return false
	}
	got, err := a.s.keys.Open(browserCookie, browserAAD)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, []byte(hex.EncodeToString(stateHash))) == 1
}

// Callback completes a consent: the browser cookie must be the one
// StartURL issued for this state (else ErrBrowser, nothing used or
// written), the state is used once (even when what follows fails), the
// code exchanged with the PKCE verifier, the identity read, and the
// connection activated with its tokens sealed, the patient's other links
// expired and a backfill enqueued through ins, in one transaction.
//
// A different Google account than the one the patient already has
// connected is refused (ErrAccountSwap): the connection is left as it was,
// a device.account_mismatch event is written and the patient told by SMS
// through the outbox. It returns the connection id, or one of the Err*
// values (wrapped) and activates nothing.
func (a *API) Callback(ctx context.Context, ins Inserter, state, code, oauthError, browserCookie string) (int64, error) {
	s := a.s
	if state == "" {
		return 0, ErrStateMissing
	}
	sh := hash(state)
	if !a.sameBrowser(browserCookie, sh) {
		return 0, ErrBrowser
	}
	st, err := s.q.OAuthStateConsume(ctx, s.pool, sh)
	if errors.Is(err, pgx.ErrNoRows) {
		old, err := s.q.OAuthStateGet(ctx, s.pool, sh)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return 0, ErrStateUnknown
		case err != nil:
			return 0, err
		case old.UsedAt != nil:
			return 0, ErrStateReused
		default:
			return 0, ErrStateExpired
		}
	}
	if err != nil {
		return 0, fmt.Errorf("error using oauth state: %w", err)
	}
	if oauthError != "" {
		return 0, fmt.Errorf("%w (%s)", ErrConsentDenied, oauthError)
	}
	if code == "" {
		return 0, ErrCodeMissing
	}
	verifier, err := s.keys.Open(st.CodeVerifierSealed, []byte("oauth_states:"+hex.EncodeToString(sh)+":code_verifier"))
	if err != nil {
		return 0, fmt.Errorf("error opening code verifier: %w", err)
	}
	tok, err := s.oauth.Exchange(ctx, code, string(verifier), st.RedirectUri)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	id, err := s.api.Identity(ctx, tok.AccessToken)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	var tz *string
	if set, err := s.api.Settings(ctx, tok.AccessToken); err == nil && set.TimeZone != "" {
		tz = &set.TimeZone
	}
	var (
		connID int64
		swap   bool
	)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		swap, err = a.refuseAccountSwap(ctx, tx, st.PatientID, id.HealthUserID, sh)
		if err != nil || swap {
			return err
		}
		conn, err := s.q.ConnectionActivate(ctx, tx, db.ConnectionActivateParams{
			PatientID: st.PatientID, Provider: googlehealth.Provider, ExternalUserID: &id.HealthUserID,
			LegacyUserID: nilIfEmpty(id.LegacyUserID), Scopes: tok.Scopes, TimeZone: tz,
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return ErrAccountInUse
		}
		if err != nil {
			return fmt.Errorf("error activating connection: %w", err)
		}
		if err := s.sealTokens(ctx, tx, conn, tok); err != nil {
			return err
		}
		if err := s.q.ConnectLinksExpireForPatient(ctx, tx, db.ConnectLinksExpireForPatientParams{
			PatientID: conn.PatientID, Provider: googlehealth.Provider,
		}); err != nil {
			return fmt.Errorf("error expiring connect links: %w", err)
		}
		data, _ := json.Marshal(map[string]any{"connection_id": conn.ID, "provider": conn.Provider})
		if err := s.q.WearableEmitEvent(ctx, tx, db.WearableEmitEventParams{
			Kind: "device.connected", Subject: "patient/" + strconv.FormatInt(conn.PatientID, 10), Data: data,
		}); err != nil {
			return err
		}
		if _, err := ins.InsertTx(ctx, tx, jobs.WearableBackfillArgs{ConnectionID: conn.ID}, nil); err != nil {
			return fmt.Errorf("error enqueueing backfill: %w", err)
		}
		connID = conn.ID
		return nil
	})
	if err == nil && swap {
		// The grant of the other account is not kept: revoke it at Google
		// (best effort; it is never stored).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := s.oauth.Revoke(rctx, tok.AccessToken); rerr != nil {
			s.logger.WarnContext(ctx, "could not revoke the refused account's grant", slog.String("error", rerr.Error()))
		}
		return 0, ErrAccountSwap
	}
	return connID, err
}

// refuseAccountSwap decides, under the connection's row lock, whether a
// consent would attach a different Google account to a patient who has
// one (any status but revoked). If so it writes device.account_mismatch and
// enqueues the patient's SMS (unless no phone or opted out), and reports
// true: the caller changes nothing else.
func (a *API) refuseAccountSwap(ctx context.Context, tx pgx.Tx, patientID int64, healthUserID string, stateHash []byte) (bool, error) {
	s := a.s
	conn, err := s.q.ConnectionGetByPatientProviderForUpdate(ctx, tx, db.ConnectionGetByPatientProviderForUpdateParams{
		PatientID: patientID, Provider: googlehealth.Provider,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("error loading connection: %w", err)
	}
	if conn.Status == "revoked" || conn.ExternalUserID == nil || *conn.ExternalUserID == healthUserID {
		return false, nil
	}
	accountSwapsRefused.Inc()
	if err := s.tellPatient(ctx, tx, conn, "device.account_mismatch", map[string]any{"outcome": "refused"},
		"wearables-account-mismatch-"+hex.EncodeToString(stateHash[:12]),
		func(db.PatientContactRow) (string, error) { return s.cfg.AccountMismatchSMSText, nil }); err != nil {
		return false, err
	}
	return true, nil
}

// StoreNotification stores a verified notification in the inbox, deduped
// by the sha256 of its body, with its wearable_notification job, in one
// transaction. It reports whether it was new.
func (a *API) StoreNotification(ctx context.Context, ins Inserter, body []byte) (bool, error) {
	s := a.s
	sum := sha256.Sum256(body)
	stored := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		id, err := s.q.InboundWebhookInsert(ctx, tx, db.InboundWebhookInsertParams{
			Provider: googlehealth.Provider, ProviderEventID: hex.EncodeToString(sum[:]),
			EventType: "google_health.notification", RawBody: body,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := ins.InsertTx(ctx, tx, jobs.WearableNotificationArgs{WebhookID: id}, nil); err != nil {
			return err
		}
		stored = true
		return nil
	})
	return stored, err
}

// Uploader is an authenticated Apple Health connection and the token used.
type Uploader struct{ TokenID, ConnectionID, PatientID int64 }

// AuthenticateUpload resolves a bearer upload token with one read-only
// query (a wrong token writes nothing). It returns ErrUploadToken when the
// token is unknown, expired, revoked (past its rotation grace), or its
// connection is not active.
func (a *API) AuthenticateUpload(ctx context.Context, token string) (Uploader, error) {
	if token == "" || len(token) > 200 {
		return Uploader{}, ErrUploadToken
	}
	row, err := a.s.q.UploadTokenAuthenticate(ctx, a.s.pool, hash(token))
	if errors.Is(err, pgx.ErrNoRows) {
		return Uploader{}, ErrUploadToken
	}
	if err != nil {
		return Uploader{}, err
	}
	return Uploader{TokenID: row.TokenID, ConnectionID: row.ConnectionID, PatientID: row.PatientID}, nil
}

// UploadResult is the 202 answer of an upload.
type UploadResult struct {
	UploadID  int64 `json:"upload_id"`
	JobID     int64 `json:"job_id"`
	Received  int   `json:"received"`
	New       int   `json:"new"`
	Duplicate int   `json:"duplicate"`
	Rejected  int   `json:"rejected"`
	Deleted   int   `json:"deleted"`
	// UnknownTypes is always empty on success (an unknown type refuses the
	// whole upload); kept so clients read one shape.
	UnknownTypes []string `json:"unknown_types"`
}

// StoreUpload parses, validates and stores an upload with its
// apple_health_ingest job in one transaction: all of it or nothing. It
// returns an *applehealth.Error for a refused batch.
func (a *API) StoreUpload(ctx context.Context, ins Inserter, u Uploader, body []byte) (UploadResult, error) {
	s := a.s
	qs, deleted, err := applehealth.Parse(body)
	if err != nil {
		return UploadResult{}, err
	}
	ms := make([]Measurement, len(qs))
	for i, q := range qs {
		ms[i] = FromApple(q)
	}
	res := UploadResult{Received: len(qs), Deleted: len(deleted), UnknownTypes: []string{}}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.q.UploadTokenTouch(ctx, tx, u.TokenID); err != nil {
			return err
		}
		id, err := s.q.AppleUploadInsert(ctx, tx, db.AppleUploadInsertParams{
			ConnectionID: u.ConnectionID, SampleCount: int32(len(qs)), Deleted: deleted,
		})
		if err != nil {
			return err
		}
		st, err := s.store(ctx, tx, connRef{ID: u.ConnectionID, PatientID: u.PatientID}, ms, &id)
		if err != nil {
			return err
		}
		if err := s.q.AppleUploadSetNewCount(ctx, tx, db.AppleUploadSetNewCountParams{ID: id, NewCount: int32(st.new)}); err != nil {
			return err
		}
		r, err := ins.InsertTx(ctx, tx, jobs.AppleHealthIngestArgs{UploadID: id, ConnectionID: u.ConnectionID}, nil)
		if err != nil {
			return err
		}
		res.UploadID, res.JobID, res.New, res.Rejected = id, r.Job.ID, st.new, st.rejected
		res.Duplicate = len(qs) - st.new
		return nil
	})
	return res, err
}
