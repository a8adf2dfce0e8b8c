-- Vacuum the hot tables early. Every job leaves one or two dead tuples in
-- river_job (available → running → completed, each a new row version) and
-- every message one or two in messages and message_attempts. With
-- PostgreSQL's defaults a table is vacuumed only once a fifth of it is
-- dead: `switchboard bench --scenarios soak` (300 messages/s) saw 31k dead
-- job tuples pile up in 40 s and commit-to-provider p99 climb from 8 ms to
-- 29 ms until autovacuum came (README "Measured numbers"). These tables are
-- vacuumed once 1,000 rows plus 1% are dead instead, and their vacuums are
-- allowed more work per round. The server's autovacuum_naptime (how often
-- autovacuum looks at each database, 1 min by default) still bounds how soon
-- that happens: README "Operations" recommends 10s for busy deployments, and
-- the development cluster and docker-compose.yml use it.
--
-- Storage parameters only: River's schema is unchanged.

-- +goose Up
ALTER TABLE switchboard.river_job SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000);
ALTER TABLE switchboard.messages SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000);
ALTER TABLE switchboard.message_attempts SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000);

-- +goose Down
ALTER TABLE switchboard.river_job RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_limit);
ALTER TABLE switchboard.messages RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_limit);
ALTER TABLE switchboard.message_attempts RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,
    autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_limit);
