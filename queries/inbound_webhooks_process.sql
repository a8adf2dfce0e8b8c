-- name: WebhookGetForUpdate :one
SELECT * FROM switchboard.inbound_webhooks WHERE id = @id FOR UPDATE;

-- name: WebhookMarkDone :exec
UPDATE switchboard.inbound_webhooks SET state = @state, processed_at = now() WHERE id = @id;

-- name: InboundMessageInsert :one
INSERT INTO switchboard.inbound_messages (provider, provider_message_id, from_e164, to_e164, body, webhook_id)
VALUES (@provider, @provider_message_id, @from_e164, @to_e164, @body, @webhook_id)
ON CONFLICT (provider, provider_message_id) DO NOTHING
RETURNING id;

-- name: AutoReplyClaim :one
-- Claims the auto-reply for a number unless one went out after @before.
INSERT INTO switchboard.sms_auto_replies AS a (phone_e164, last_reply_at) VALUES (@phone_e164, now())
ON CONFLICT (phone_e164) DO UPDATE SET last_reply_at = now() WHERE a.last_reply_at < @before::timestamptz
RETURNING true AS due;
