-- Identity-based reconciliation (issue 12).
--
-- An attempt whose provider-side copy cannot be told apart from another
-- message's copy (same recipient, same body, no tag the provider echoes,
-- created at the same instant) is held for an operator: outcome 'held', an
-- event message.held, and a dead letter of class reconcile_undecided. It is
-- never resent blindly and never adopted silently; cancel_sms (00075)
-- already refuses a message with a held attempt.
--
-- A provider message id is adopted by at most one message
-- (messages_provider_message_id_idx, 00010); the index below lets a
-- reconciliation find the ids other messages' attempts took.

-- +goose Up
ALTER TABLE switchboard.message_attempts DROP CONSTRAINT message_attempts_outcome_check;
ALTER TABLE switchboard.message_attempts ADD CONSTRAINT message_attempts_outcome_check CHECK (outcome IN
    ('accepted', 'not_sent', 'recipient_rejected', 'permanent', 'throttled',
     'ambiguous', 'reconciled_found', 'reconciled_absent', 'held'));

CREATE INDEX message_attempts_provider_message_idx ON switchboard.message_attempts (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.dlq_retry_where(p_kind text, p_class text, p_since timestamptz, actor text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_kind IS NULL AND p_class IS NULL AND p_since IS NULL THEN
        RAISE EXCEPTION 'kind, class or since is required for a bulk retry' USING ERRCODE = '22023';
    END IF;
    IF p_class IS NOT NULL AND p_class NOT IN ('permanent', 'retries_exhausted', 'unavailable', 'unknown_kind', 'undecodable_args', 'reconcile_undecided') THEN
        RAISE EXCEPTION 'class % is not a dead-letter class', p_class USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_ids
    FROM switchboard.dead_letters
    WHERE state = 'open'
      AND (p_kind IS NULL OR kind = p_kind)
      AND (p_class IS NULL OR class = p_class)
      AND (p_since IS NULL OR created_at >= p_since);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM switchboard.dlq_retry(v_ids, actor);
    RETURN cardinality(v_ids);
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.dlq_retry_where(p_kind text, p_class text, p_since timestamptz, actor text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_kind IS NULL AND p_class IS NULL AND p_since IS NULL THEN
        RAISE EXCEPTION 'kind, class or since is required for a bulk retry' USING ERRCODE = '22023';
    END IF;
    IF p_class IS NOT NULL AND p_class NOT IN ('permanent', 'retries_exhausted', 'unavailable', 'unknown_kind', 'undecodable_args') THEN
        RAISE EXCEPTION 'class % is not a dead-letter class', p_class USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_ids
    FROM switchboard.dead_letters
    WHERE state = 'open'
      AND (p_kind IS NULL OR kind = p_kind)
      AND (p_class IS NULL OR class = p_class)
      AND (p_since IS NULL OR created_at >= p_since);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM switchboard.dlq_retry(v_ids, actor);
    RETURN cardinality(v_ids);
END
$$;
-- +goose StatementEnd
DROP INDEX switchboard.message_attempts_provider_message_idx;
ALTER TABLE switchboard.message_attempts DROP CONSTRAINT message_attempts_outcome_check;
ALTER TABLE switchboard.message_attempts ADD CONSTRAINT message_attempts_outcome_check CHECK (outcome IN
    ('accepted', 'not_sent', 'recipient_rejected', 'permanent', 'throttled',
     'ambiguous', 'reconciled_found', 'reconciled_absent'));
