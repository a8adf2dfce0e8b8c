-- +goose Up
-- Operators may see when a patient link was spent (connect_links.used_at,
-- 00071) and when an upload token expires (upload_tokens.expires_at,
-- 00072): both columns came before column_access (00090) listed the
-- tables, so until now only switchboard_phi_reader could read them, though
-- neither says anything about the patient. Answering "was this link used?"
-- or "why is this phone's upload refused?" is operating.
INSERT INTO switchboard.column_access (table_name, column_name, access) VALUES
    ('connect_links', 'used_at', 'operator'),
    ('upload_tokens', 'expires_at', 'operator');
SELECT switchboard.apply_role_grants();

-- +goose Down
DELETE FROM switchboard.column_access
WHERE (table_name, column_name) IN (('connect_links', 'used_at'), ('upload_tokens', 'expires_at'));
SELECT switchboard.apply_role_grants();
