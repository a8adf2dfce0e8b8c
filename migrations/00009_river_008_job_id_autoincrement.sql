-- River schema version 8, from riverpgxv5 v0.51.2 migration/main (schema switchboard).
-- Recorded in switchboard.river_migration so River's own migrator validates the result.
-- +goose Up
-- +goose StatementBegin
-- No-op. Postgres sequences already prevent automatically generated job IDs
-- from being reused.
SELECT 1;

-- +goose StatementEnd
INSERT INTO switchboard.river_migration (line, version) VALUES ('main', 8);

-- +goose Down
DELETE FROM switchboard.river_migration WHERE line = 'main' AND version = 8;
-- +goose StatementBegin
-- No-op. Postgres sequences already prevent automatically generated job IDs
-- from being reused.
SELECT 1;

-- +goose StatementEnd
