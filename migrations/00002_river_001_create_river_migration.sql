-- River schema version 1, from riverpgxv5 v0.51.2 migration/main (schema switchboard).
-- Recorded in switchboard.river_migration so River's own migrator validates the result.
-- +goose Up
-- +goose StatementBegin
CREATE TABLE switchboard.river_migration(
  id bigserial PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT NOW(),
  version bigint NOT NULL,
  CONSTRAINT version CHECK (version >= 1)
);

CREATE UNIQUE INDEX ON switchboard.river_migration USING btree(version);
-- +goose StatementEnd
INSERT INTO switchboard.river_migration (version) VALUES (1);

-- +goose Down
-- +goose StatementBegin
DROP TABLE switchboard.river_migration;
-- +goose StatementEnd
