-- name: MessageEventInsert :exec
INSERT INTO switchboard.message_events
    (message_id, provider, provider_status, status, error_code, applied, webhook_id)
VALUES (@message_id, @provider, @provider_status, @status, sqlc.narg(error_code), @applied, sqlc.narg(webhook_id));

-- name: MessageEventListByMessage :many
SELECT * FROM switchboard.message_events WHERE message_id = @message_id ORDER BY id;
