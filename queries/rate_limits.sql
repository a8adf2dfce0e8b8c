-- name: RateLimitTake :one
-- RateLimitTake asks for one slot: wait is 0 when admitted. Run it in its own
-- short transaction (autocommit): the key's row lock is held until commit.
SELECT switchboard.rate_limit_take(@key::text, @emission_interval::interval, @burst::integer)::interval AS wait;

-- name: RateLimitCleanup :one
-- RateLimitCleanup deletes the state of keys idle for longer than idle.
SELECT switchboard.rate_limit_cleanup(@idle::interval)::integer AS deleted;

-- name: RateLimitGet :one
SELECT key, tat, updated_at FROM switchboard.rate_limits WHERE key = @key;

-- name: RateLimitReserve :one
SELECT wait, booked FROM switchboard.rate_limit_reserve(@key::text, @emission_interval::interval, @burst::integer, @max_wait::interval);
