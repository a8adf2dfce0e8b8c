-- name: ConsentGet :one
SELECT * FROM switchboard.sms_consent WHERE phone_e164 = @phone_e164;

-- name: ConsentSet :exec
INSERT INTO switchboard.sms_consent (phone_e164, opted_out, source)
VALUES (@phone_e164, @opted_out, @source)
ON CONFLICT (phone_e164) DO UPDATE
SET opted_out = excluded.opted_out, source = excluded.source, updated_at = now();
