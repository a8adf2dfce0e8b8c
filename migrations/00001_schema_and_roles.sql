-- The switchboard schema and the three roles that use it.
--
-- Roles are cluster-wide and have no login: grant them to real users
-- (GRANT switchboard_app TO my_service). They are created only when absent,
-- because several databases of one cluster may carry Switchboard; for the same
-- reason the down migration leaves them in place.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS switchboard;

-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_app') THEN
    CREATE ROLE switchboard_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_worker') THEN
    CREATE ROLE switchboard_worker NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_operator') THEN
    CREATE ROLE switchboard_operator NOLOGIN;
  END IF;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON SCHEMA switchboard FROM PUBLIC;
GRANT USAGE ON SCHEMA switchboard TO switchboard_app, switchboard_worker, switchboard_operator;

-- +goose Down
DROP SCHEMA IF EXISTS switchboard CASCADE;
