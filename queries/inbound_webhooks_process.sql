-- name: WebhookGetForUpdate :one
SELECT * FROM switchboard.inbound_webhooks WHERE id = @id FOR UPDATE;

-- name: WebhookMarkDone :exec
UPDATE switchboard.inbound_webhooks SET state = @state, processed_at = now() WHERE id = @id;
