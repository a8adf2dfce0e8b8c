-- name: MessageBodiesErase :execrows
-- Erases the bodies of messages final for longer than the retention, a
-- batch at a time. The row, its status and its audit trail stay.
UPDATE switchboard.messages SET body = NULL, body_erased_at = now()
WHERE id IN (
    SELECT id FROM switchboard.messages
    WHERE body IS NOT NULL AND final_at < @cutoff::timestamptz
    ORDER BY final_at
    LIMIT @batch::integer
);

-- name: WebhookBodiesErase :execrows
UPDATE switchboard.inbound_webhooks SET raw_body = NULL, body_erased_at = now()
WHERE id IN (
    SELECT id FROM switchboard.inbound_webhooks
    WHERE raw_body IS NOT NULL AND state <> 'pending' AND received_at < @cutoff::timestamptz
    ORDER BY received_at
    LIMIT @batch::integer
);

-- name: InboundMessageBodiesErase :execrows
UPDATE switchboard.inbound_messages SET body = NULL
WHERE id IN (
    SELECT id FROM switchboard.inbound_messages
    WHERE body IS NOT NULL AND received_at < @cutoff::timestamptz
    ORDER BY received_at
    LIMIT @batch::integer
);

-- name: JobKindsToAutoRequeue :many
-- Kinds that opted into automatic requeue whose destination is healthy
-- again: not paused, breaker closed, and a success newer than any failure.
SELECT k.kind FROM switchboard.job_kinds k
JOIN switchboard.destination_health d ON d.destination = k.destination
WHERE k.auto_requeue AND NOT d.paused AND d.breaker_state = 'closed'
  AND d.last_success_at IS NOT NULL
  AND (d.last_failure_at IS NULL OR d.last_success_at > d.last_failure_at)
ORDER BY k.kind;

-- name: FHIRInboundRawErase :execrows
-- Erases raw resources pulled from EHRs once mapped or settled (unmatched
-- ones are kept for review until someone resolves them).
UPDATE switchboard.fhir_inbound SET raw = NULL, raw_erased_at = now()
WHERE id IN (
    SELECT id FROM switchboard.fhir_inbound
    WHERE raw IS NOT NULL AND state <> 'unmatched' AND received_at < @cutoff::timestamptz
    ORDER BY received_at
    LIMIT @batch::integer
);
