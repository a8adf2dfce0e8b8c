package wearables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/jobs"
)

// aad binds a sealed token to its connection and column: a sealed value
// copied to another row or column does not open.
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
	return s.tellPatient(ctx, tx, conn, "device.needs_reauth", map[string]any{"reason": reason},
		fmt.Sprintf("wearables-reauth-%d-%d", conn.ID, conn.ReauthCount+1),
		func(contact db.PatientContactRow) (string, error) {
			body := s.cfg.ReauthSMSText
			if !strings.Contains(body, "{link}") {
				return body, nil
			}
			link, err := s.q.ConnectLinkIssue(ctx, tx, db.ConnectLinkIssueParams{
				PatientExternalRef: contact.ExternalRef,
				Ttl:                pgtype.Interval{Microseconds: s.cfg.ReauthLinkTTL.Microseconds(), Valid: true},
			})
			if err != nil {
				return "", fmt.Errorf("error issuing connect link: %w", err)
			}
			return strings.ReplaceAll(body, "{link}", s.cfg.PublicBaseURL+"/oauth/google-health/start?link="+link), nil
		})
}

// tellPatient writes an event of kind about conn (its data: connection_id,
// provider and extra) and, unless the patient has no phone or their number
// opted out, enqueues an SMS through the outbox under idempotencyKey. body
// is called only when an SMS goes out (it may issue a link). The caller
// holds the connection's row lock.
func (s *Service) tellPatient(ctx context.Context, tx pgx.Tx, conn db.SwitchboardDeviceConnection, kind string, extra map[string]any,
	idempotencyKey string, body func(db.PatientContactRow) (string, error)) error {
	data := map[string]any{"connection_id": conn.ID, "provider": conn.Provider}
	maps.Copy(data, extra)
	raw, _ := json.Marshal(data)
	if err := s.q.WearableEmitEvent(ctx, tx, db.WearableEmitEventParams{
		Kind: kind, Subject: "patient/" + strconv.FormatInt(conn.PatientID, 10), Data: raw,
	}); err != nil {
		return fmt.Errorf("error emitting event: %w", err)
	}
	contact, err := s.q.PatientContact(ctx, tx, conn.PatientID)
	if err != nil {
		return fmt.Errorf("error loading patient contact: %w", err)
	}
	if contact.PhoneE164 == nil || contact.OptedOut {
		s.logger.InfoContext(ctx, "no sms for "+kind+": no phone or opted out", slog.Int64("connection_id", conn.ID))
		return nil
	}
	text, err := body(contact)
	if err != nil {
		return err
	}
	if _, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{
		IdempotencyKey: idempotencyKey,
		To:             *contact.PhoneE164,
		Body:           text,
		PatientRef:     contact.ExternalRef,
	}); err != nil {
		return fmt.Errorf("error enqueueing %s sms: %w", kind, err)
	}
	return nil
}
