package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

func runReencrypt(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reencrypt", "reencrypt\n\nRe-seals every stored token and private key with the first key of TOKEN_ENCRYPTION_KEYS.\nRotate a key: put the new key first (kid:base64key,old:base64key), run this until it reports\n0 resealed, then remove the old key. Audited in switchboard.audit_log.", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	var cfg struct {
		Base      base
		TokenKeys string `env:"TOKEN_ENCRYPTION_KEYS"`
	}
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	keys, err := secrets.Parse(cfg.TokenKeys)
	if err != nil {
		return usageError{err.Error()}
	}
	pool, err := openPool(ctx, cfg.Base, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := secrets.Rotate(ctx, pool, keys)
	if err != nil {
		return err
	}
	detail, _ := json.Marshal(map[string]any{"primary_key": keys.PrimaryKeyID(), "resealed": r.Resealed, "current": r.Current, "changed": r.Changed})
	if err := db.New().AuditInsert(ctx, pool, db.AuditInsertParams{
		Actor: actor(), Action: "secrets.reencrypt", TargetType: "token_encryption_key", TargetID: keys.PrimaryKeyID(), Detail: detail,
	}); err != nil {
		return fmt.Errorf("error writing audit log: %w", err)
	}
	fmt.Fprintf(stdout, "resealed %d, already current %d, changed meanwhile %d (run again)\n", r.Resealed, r.Current, r.Changed)
	return nil
}
