-- name: JobKindList :many
SELECT * FROM switchboard.job_kinds ORDER BY kind;
