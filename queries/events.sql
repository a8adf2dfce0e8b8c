-- name: EventEmit :one
-- Records an event to the app and NOTIFYs switchboard_events with its id.
SELECT switchboard.emit_event(@kind::text, @subject::text, @data::jsonb)::bigint AS id;

-- name: EventListAfter :many
SELECT * FROM switchboard.events WHERE id > @after_id ORDER BY id LIMIT @max_rows;
