-- name: ConnectLinkUse :one
-- ConnectLinkUse spends a connect link: it returns the row only for the one
-- caller that finds it unexpired and unused (single use, atomically).
UPDATE switchboard.connect_links
SET uses = uses + 1, last_used_at = now(), used_at = now()
WHERE token_hash = @token_hash AND expires_at > now() AND used_at IS NULL
RETURNING patient_id, provider;

-- name: ConnectLinkPeek :one
-- ConnectLinkPeek reads a link without spending it (the GET page).
SELECT used_at IS NOT NULL AS used, expires_at <= now() AS expired
FROM switchboard.connect_links WHERE token_hash = @token_hash;

-- name: ConnectLinksExpireForPatient :exec
-- ConnectLinksExpireForPatient ends a patient's outstanding links of a
-- provider once a consent completed.
UPDATE switchboard.connect_links SET expires_at = now()
WHERE patient_id = @patient_id AND provider = @provider AND used_at IS NULL AND expires_at > now();

-- name: ConnectLinkIssue :one
SELECT switchboard.wearables_connect_link(@patient_external_ref::text, 'google_health', @ttl::interval)::text;

-- name: OAuthStateInsert :exec
INSERT INTO switchboard.oauth_states (state_hash, patient_id, provider, code_verifier_sealed, redirect_uri, expires_at)
VALUES (@state_hash, @patient_id, @provider, @code_verifier_sealed, @redirect_uri, @expires_at);

-- name: OAuthStateConsume :one
-- OAuthStateConsume uses a state once: it returns the row only when the
-- state exists, has not expired and was not used before.
UPDATE switchboard.oauth_states
SET used_at = now()
WHERE state_hash = @state_hash AND used_at IS NULL AND expires_at > now()
RETURNING *;

-- name: OAuthStateGet :one
SELECT * FROM switchboard.oauth_states WHERE state_hash = @state_hash;

-- name: OAuthCleanup :exec
WITH s AS (DELETE FROM switchboard.oauth_states WHERE expires_at < now() - interval '1 day')
DELETE FROM switchboard.connect_links WHERE expires_at < now() - interval '1 day';
