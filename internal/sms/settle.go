package sms

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// SettleHeld is an operator's decision about a message held for an operator
// (message.held; dead letter class reconcile_undecided): copy is the
// provider message id the operator found to be this message's copy — it is
// adopted and never sent again — or "" when the operator found none at the
// provider — it is sent. Either way the dead letter is retried and the
// returned job carries the decision out; the decision is audited under
// actor. A message that is not held, or a copy that is another message's,
// is refused and nothing changes (switchboard.sms_settle_held, 00096).
func SettleHeld(ctx context.Context, pool *pgxpool.Pool, messageID int64, copy, actor string) (int64, error) {
	p := db.MessageSettleHeldParams{MessageID: messageID, Actor: actor}
	if copy != "" {
		p.ProviderMessageID = &copy
	}
	var job int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		job, err = db.New().MessageSettleHeld(ctx, tx, p)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22023" {
		return 0, fmt.Errorf("cannot settle message %d: %s", messageID, pgErr.Message)
	}
	if err != nil {
		return 0, fmt.Errorf("error settling message %d: %w", messageID, err)
	}
	return job, nil
}
