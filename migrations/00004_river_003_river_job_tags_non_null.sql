-- River schema version 3, from riverpgxv5 v0.51.2 migration/main (schema switchboard).
-- Recorded in switchboard.river_migration so River's own migrator validates the result.
-- +goose Up
-- +goose StatementBegin
ALTER TABLE switchboard.river_job ALTER COLUMN tags SET DEFAULT '{}';
UPDATE switchboard.river_job SET tags = '{}' WHERE tags IS NULL;
ALTER TABLE switchboard.river_job ALTER COLUMN tags SET NOT NULL;

-- +goose StatementEnd
INSERT INTO switchboard.river_migration (version) VALUES (3);

-- +goose Down
DELETE FROM switchboard.river_migration WHERE version = 3;
-- +goose StatementBegin
ALTER TABLE switchboard.river_job
    ALTER COLUMN tags DROP NOT NULL,
    ALTER COLUMN tags DROP DEFAULT;

-- +goose StatementEnd
