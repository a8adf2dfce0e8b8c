-- name: InboundWebhookInsert :one
-- InboundWebhookInsert stores one verified callback and returns its id. A
-- callback already stored (same provider and provider event id) inserts
-- nothing and returns no row (pgx.ErrNoRows): a replay is a no-op.
INSERT INTO switchboard.inbound_webhooks (provider, provider_event_id, event_type, raw_body)
VALUES (@provider, @provider_event_id, @event_type, @raw_body)
ON CONFLICT (provider, provider_event_id) DO NOTHING
RETURNING id;
