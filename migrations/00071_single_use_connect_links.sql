-- Connect links start at most one consent: the POST from the link's page
-- spends the link (used_at set atomically); a link preview's GET does not.
-- A completed consent also expires every other outstanding link of that
-- patient and provider, so an older re-connect SMS cannot start another.

-- +goose Up
ALTER TABLE switchboard.connect_links ADD COLUMN used_at timestamptz;

-- +goose Down
ALTER TABLE switchboard.connect_links DROP COLUMN used_at;
