package main

import (
	"encoding/json"
	"fmt"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

// reencryptCmd is `switchboard reencrypt`.
type reencryptCmd struct{}

func (reencryptCmd) Help() string {
	return `Re-seals every stored token and private key with the first key of
TOKEN_ENCRYPTION_KEYS. Rotate a key: put the new key first
(kid:base64key,old:base64key), run this until it reports 0 resealed, then
remove the old key. Audited in switchboard.audit_log.`
}

func (reencryptCmd) Run(e *env) error {
	var cfg struct {
		Base      base
		TokenKeys string `env:"TOKEN_ENCRYPTION_KEYS"`
	}
	if err := load(e.ctx, &cfg); err != nil {
		return err
	}
	keys, err := secrets.Parse(cfg.TokenKeys)
	if err != nil {
		return usageError{msg: "TOKEN_ENCRYPTION_KEYS: " + err.Error()}
	}
	pool, err := openPool(e.ctx, cfg.Base, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := secrets.Rotate(e.ctx, pool, keys)
	if err != nil {
		return err
	}
	detail, _ := json.Marshal(map[string]any{"primary_key": keys.PrimaryKeyID(), "resealed": r.Resealed, "current": r.Current, "changed": r.Changed})
	if err := db.New().AuditInsert(e.ctx, pool, db.AuditInsertParams{
		Actor: actor(), Action: "secrets.reencrypt", TargetType: "token_encryption_key", TargetID: keys.PrimaryKeyID(), Detail: detail,
	}); err != nil {
		return fmt.Errorf("error writing audit log: %w", err)
	}
	fmt.Fprintf(e.stdout, "resealed %d, already current %d, changed meanwhile %d (run again)\n", r.Resealed, r.Current, r.Changed)
	return nil
}
