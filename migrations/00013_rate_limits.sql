-- Distributed rate limits shared by every worker replica: one row per key
-- (destination:subkey) holding a GCRA "theoretical arrival time", and the two
-- functions that use it.
--
-- GCRA (generic cell rate algorithm): with emission interval T (period/limit)
-- and burst B, a call at time t is admitted when tat <= t + (B-1)·T, and then
-- tat becomes max(tat, t) + T. In any window of length L at most B + L/T calls
-- are admitted, and a denied call learns exactly when the next slot opens:
-- tat - (B-1)·T - t. One timestamp per key is the whole state, so a changed
-- limit needs no state migration, and a row whose tat has passed says the same
-- as no row at all (a full burst is available) — which is why cleanup can
-- never let a call through early.
--
-- Design choices:
--   * UNLOGGED: every admission updates a row. An unlogged table writes no WAL,
--     so the call's commit does not wait for a WAL flush (fsync on this host
--     swings between 0.06 and 2.5 ms) and the constant updates do not bloat WAL
--     or replication. The cost: after a crash (not a clean restart) the table is
--     empty and a standby promoted after failover starts empty too, so each key
--     may admit one extra burst. Vendors answer the rare excess with 429, which
--     the workers already treat as "throttled" (snooze, no attempt spent):
--     acceptable for limiter state, never for domain data.
--   * fillfactor 50 and no index but the primary key: updates change tat and
--     updated_at only, so they are HOT (no index write) and find room on their
--     own page; page pruning reclaims old versions without waiting for vacuum.
--     An index on tat would make every update non-HOT, so cleanup scans instead.
--   * clock_timestamp(), not now(): now() is the start of the caller's
--     transaction and would be stale inside a long one. The clock is read in
--     the ON CONFLICT clauses, which PostgreSQL evaluates after it has locked
--     the row, so concurrent callers see a time no earlier than the previous
--     holder's, and admissions are judged in the order they are serialized.
--   * Atomicity comes from the row lock that INSERT … ON CONFLICT DO UPDATE
--     takes (also when its WHERE rejects the update). A denial writes nothing,
--     and a key that is plainly used up is denied from an unlocked read first.
--     The lock is held until the caller's transaction ends: call
--     rate_limit_take in its own short transaction (autocommit), never inside a
--     long one, or every other caller of that key waits for it.

-- +goose Up
CREATE UNLOGGED TABLE switchboard.rate_limits (
    key        text COLLATE "C" PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 200),
    -- Theoretical arrival time: the key is fully rested once tat <= now.
    tat        timestamptz NOT NULL,
    -- When a call was last admitted, for operators.
    updated_at timestamptz NOT NULL
) WITH (fillfactor = 50);

COMMENT ON TABLE switchboard.rate_limits IS
    'GCRA limiter state per destination:subkey; unlogged (lost on crash: each key may admit one extra burst); see migration 00013';

-- rate_limit_take asks for one slot for p_key, where p_interval is the
-- emission interval (period / limit) and p_burst how many calls may go
-- back to back. It returns '0' when the call is admitted (and records it), or
-- how long to wait before asking again (> 0, nothing recorded). Raises 22023
-- naming the argument for a key that is null, empty or longer than 200
-- characters, an interval not in (0, 1 day], or a burst not in [1, 10000].
-- +goose StatementBegin
CREATE FUNCTION switchboard.rate_limit_take(p_key text, p_interval interval, p_burst integer)
RETURNS interval
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_tolerance interval;
    v_tat       timestamptz;
    v_now       timestamptz;
BEGIN
    IF p_key IS NULL OR p_key = '' THEN
        RAISE EXCEPTION 'key is required' USING ERRCODE = '22023';
    END IF;
    IF char_length(p_key) > 200 THEN
        RAISE EXCEPTION 'key must be at most 200 characters' USING ERRCODE = '22023';
    END IF;
    IF p_interval IS NULL THEN
        RAISE EXCEPTION 'interval is required' USING ERRCODE = '22023';
    END IF;
    IF p_interval <= interval '0' OR p_interval > interval '1 day' THEN
        RAISE EXCEPTION 'interval must be more than 0 and at most 1 day, got %', p_interval USING ERRCODE = '22023';
    END IF;
    IF p_burst IS NULL THEN
        RAISE EXCEPTION 'burst is required' USING ERRCODE = '22023';
    END IF;
    IF p_burst < 1 OR p_burst > 10000 THEN
        RAISE EXCEPTION 'burst must be 1 to 10000, got %', p_burst USING ERRCODE = '22023';
    END IF;
    v_tolerance := p_interval * (p_burst - 1);

    -- A key that is plainly used up is denied from a plain read: no row lock,
    -- no transaction id, no write, so the many callers of a busy key do not
    -- queue behind each other just to be told to wait. This is safe because a
    -- key's tat only moves forward (cleanup deletes only rows whose tat has
    -- passed): a newer value could only deny for longer.
    SELECT r.tat INTO v_tat FROM switchboard.rate_limits r WHERE r.key = p_key;
    IF FOUND THEN
        v_now := clock_timestamp();
        IF v_tat > v_now + v_tolerance THEN
            RETURN v_tat - v_tolerance - v_now;
        END IF;
    END IF;

    -- One statement decides and records: a new key is admitted; an existing
    -- key is locked, then admitted only if its tat allows it now.
    INSERT INTO switchboard.rate_limits AS r (key, tat, updated_at)
    VALUES (p_key, clock_timestamp() + p_interval, clock_timestamp())
    ON CONFLICT (key) DO UPDATE
        SET tat = greatest(r.tat, clock_timestamp()) + p_interval,
            updated_at = clock_timestamp()
        WHERE r.tat <= clock_timestamp() + v_tolerance;
    IF FOUND THEN
        RETURN interval '0';
    END IF;

    -- Denied after all (another caller took the slot since the read above):
    -- the row is still locked by the statement above, so this reads the very
    -- tat that was judged. Never return 0 for a denial, even if the
    -- slot opened in the microseconds since.
    SELECT r.tat INTO v_tat FROM switchboard.rate_limits r WHERE r.key = p_key;
    RETURN greatest(coalesce(v_tat, clock_timestamp()) - v_tolerance - clock_timestamp(),
                    interval '1 microsecond');
END
$$;
-- +goose StatementEnd

-- rate_limit_cleanup deletes the state of keys idle for longer than p_idle
-- (tat older than now() - p_idle) and returns how many it deleted. Deleting a
-- key whose tat has passed never changes a later decision; p_idle only keeps
-- recently used rows to be updated in place rather than inserted again.
-- Raises 22023 when p_idle is null or negative.
-- +goose StatementBegin
CREATE FUNCTION switchboard.rate_limit_cleanup(p_idle interval)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_n integer;
BEGIN
    IF p_idle IS NULL THEN
        RAISE EXCEPTION 'idle is required' USING ERRCODE = '22023';
    END IF;
    IF p_idle < interval '0' THEN
        RAISE EXCEPTION 'idle must not be negative, got %', p_idle USING ERRCODE = '22023';
    END IF;
    DELETE FROM switchboard.rate_limits WHERE tat < now() - p_idle;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.rate_limit_take(text, interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.rate_limit_cleanup(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.rate_limit_take(text, interval, integer),
    switchboard.rate_limit_cleanup(interval)
    TO switchboard_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON switchboard.rate_limits TO switchboard_worker;
GRANT SELECT ON switchboard.rate_limits TO switchboard_operator;

-- +goose Down
DROP FUNCTION switchboard.rate_limit_cleanup(interval);
DROP FUNCTION switchboard.rate_limit_take(text, interval, integer);
DROP TABLE switchboard.rate_limits;
