-- What River UI shows (issue 14): a dead job carries its dead letter's id,
-- class and subject in its metadata, and a held job says why
-- (resilience.HoldFor writes hold_reason, hold_destination, hold_until).
-- Resuming a destination wakes the jobs held by its pause at once instead of
-- after their snooze (up to ~36 s).

-- +goose Up

-- record_dead_letter now runs BEFORE River's state change, so the row River
-- writes (and River UI shows) carries dead_letter_id, dead_letter_class and
-- dead_letter_subject in its metadata. Same rules as 00011 otherwise; it
-- returns NEW on every path (NULL would skip River's update).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.record_dead_letter()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_kind    switchboard.job_kinds;
    v_subject text;
    v_class   text;
    v_id      bigint;
BEGIN
    IF NEW.metadata ? 'unique_key_conflict' OR NEW.metadata ? 'switchboard_cancelled' THEN
        RETURN NEW;
    END IF;
    -- A job cancelled without any error was cancelled deliberately (River UI
    -- on a job that never ran): nothing failed.
    IF NEW.state = 'cancelled' AND coalesce(array_length(NEW.errors, 1), 0) = 0 THEN
        RETURN NEW;
    END IF;
    SELECT * INTO v_kind FROM switchboard.job_kinds WHERE kind = NEW.kind;
    IF FOUND AND v_kind.subject_arg IS NOT NULL AND NEW.args ? v_kind.subject_arg THEN
        v_subject := v_kind.subject_type || '/' || (NEW.args ->> v_kind.subject_arg);
    END IF;
    v_class := coalesce(NEW.metadata ->> 'outcome_class',
        CASE WHEN NOT FOUND THEN 'unknown_kind'
             WHEN NEW.state = 'cancelled' THEN 'permanent'
             ELSE 'retries_exhausted' END);
    INSERT INTO switchboard.dead_letters
        (job_id, kind, queue, args, errors, attempts, max_attempts, class, job_state, subject)
    VALUES (NEW.id, NEW.kind, NEW.queue, NEW.args, coalesce(to_jsonb(NEW.errors), '[]'),
            NEW.attempt, NEW.max_attempts, v_class, NEW.state::text, v_subject)
    RETURNING id INTO v_id;
    PERFORM switchboard.emit_event('dead_letter.opened', coalesce(v_subject, 'dead_letter/' || v_id),
        jsonb_build_object('dead_letter_id', v_id, 'job_id', NEW.id, 'kind', NEW.kind, 'class', v_class));
    NEW.metadata := coalesce(NEW.metadata, '{}') || jsonb_strip_nulls(jsonb_build_object(
        'dead_letter_id', v_id, 'dead_letter_class', v_class, 'dead_letter_subject', v_subject));
    RETURN NEW;
END
$$;
-- +goose StatementEnd

DROP TRIGGER switchboard_dead_letter ON switchboard.river_job;
CREATE TRIGGER switchboard_dead_letter
    BEFORE UPDATE OF state ON switchboard.river_job
    FOR EACH ROW
    WHEN (NEW.state IN ('discarded', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION switchboard.record_dead_letter();

-- A dead job retried from River UI is no longer a dead letter: its
-- dead_letter_* keys go (requeue_dead_letter marks the row requeued).
-- +goose StatementBegin
CREATE FUNCTION switchboard.forget_dead_letter_metadata()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    NEW.metadata := NEW.metadata - 'dead_letter_id' - 'dead_letter_class' - 'dead_letter_subject';
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER switchboard_dead_letter_forget
    BEFORE UPDATE OF state ON switchboard.river_job
    FOR EACH ROW
    WHEN (OLD.state IN ('discarded', 'cancelled') AND NEW.state IN ('available', 'scheduled', 'pending')
          AND NEW.metadata ? 'dead_letter_id')
    EXECUTE FUNCTION switchboard.forget_dead_letter_metadata();

-- Jobs held by a pause, found quickly on resume.
CREATE INDEX river_job_held_paused_idx ON switchboard.river_job ((metadata ->> 'hold_destination'))
    WHERE state = 'scheduled' AND metadata ->> 'hold_reason' = 'paused';

-- wake_paused_jobs makes the jobs a pause held available at once when the
-- destination resumes: those held for this destination, and those of kinds
-- that call it (an SMS held while every provider was paused names the last
-- provider it tried). A job whose destination is still unavailable finds
-- that out and holds again.
-- +goose StatementBegin
CREATE FUNCTION switchboard.wake_paused_jobs()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    UPDATE switchboard.river_job
    SET state = 'available', scheduled_at = now()
    WHERE state = 'scheduled'
      AND metadata ->> 'hold_reason' = 'paused'
      AND (metadata ->> 'hold_destination' = NEW.destination
           OR kind IN (SELECT kind FROM switchboard.job_kinds WHERE destination = NEW.destination));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER switchboard_destination_resumed
    AFTER UPDATE OF paused ON switchboard.destination_health
    FOR EACH ROW
    WHEN (OLD.paused AND NOT NEW.paused)
    EXECUTE FUNCTION switchboard.wake_paused_jobs();

REVOKE ALL ON FUNCTION switchboard.forget_dead_letter_metadata() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.wake_paused_jobs() FROM PUBLIC;

-- +goose Down
DROP TRIGGER switchboard_destination_resumed ON switchboard.destination_health;
DROP FUNCTION switchboard.wake_paused_jobs();
DROP INDEX switchboard.river_job_held_paused_idx;
DROP TRIGGER switchboard_dead_letter_forget ON switchboard.river_job;
DROP FUNCTION switchboard.forget_dead_letter_metadata();
DROP TRIGGER switchboard_dead_letter ON switchboard.river_job;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.record_dead_letter()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_kind    switchboard.job_kinds;
    v_subject text;
    v_class   text;
    v_id      bigint;
BEGIN
    IF NEW.metadata ? 'unique_key_conflict' OR NEW.metadata ? 'switchboard_cancelled' THEN
        RETURN NULL;
    END IF;
    IF NEW.state = 'cancelled' AND coalesce(array_length(NEW.errors, 1), 0) = 0 THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_kind FROM switchboard.job_kinds WHERE kind = NEW.kind;
    IF FOUND AND v_kind.subject_arg IS NOT NULL AND NEW.args ? v_kind.subject_arg THEN
        v_subject := v_kind.subject_type || '/' || (NEW.args ->> v_kind.subject_arg);
    END IF;
    v_class := coalesce(NEW.metadata ->> 'outcome_class',
        CASE WHEN NOT FOUND THEN 'unknown_kind'
             WHEN NEW.state = 'cancelled' THEN 'permanent'
             ELSE 'retries_exhausted' END);
    INSERT INTO switchboard.dead_letters
        (job_id, kind, queue, args, errors, attempts, max_attempts, class, job_state, subject)
    VALUES (NEW.id, NEW.kind, NEW.queue, NEW.args, coalesce(to_jsonb(NEW.errors), '[]'),
            NEW.attempt, NEW.max_attempts, v_class, NEW.state::text, v_subject)
    RETURNING id INTO v_id;
    PERFORM switchboard.emit_event('dead_letter.opened', coalesce(v_subject, 'dead_letter/' || v_id),
        jsonb_build_object('dead_letter_id', v_id, 'job_id', NEW.id, 'kind', NEW.kind, 'class', v_class));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER switchboard_dead_letter
    AFTER UPDATE OF state ON switchboard.river_job
    FOR EACH ROW
    WHEN (NEW.state IN ('discarded', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION switchboard.record_dead_letter();
