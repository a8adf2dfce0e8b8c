-- name: PatientGet :one
SELECT * FROM switchboard.patients WHERE id = @id;

-- name: PatientGetByExternalRef :one
SELECT * FROM switchboard.patients WHERE external_ref = @external_ref;

-- name: PatientListByPhone :many
SELECT * FROM switchboard.patients WHERE phone_e164 = @phone_e164 ORDER BY id;

-- name: PatientApplyPulled :one
-- Applies demographics pulled from an EHR to a matched patient, without
-- enqueuing pushes: data from an EHR is never pushed to an EHR. A NULL keeps
-- the stored value. Returns whether anything changed.
WITH old AS (
    SELECT p.* FROM switchboard.patients p WHERE p.id = @id FOR UPDATE
), upd AS (
    UPDATE switchboard.patients p
    SET given_name = coalesce(sqlc.narg(given_name), p.given_name),
        family_name = coalesce(sqlc.narg(family_name), p.family_name),
        gender = coalesce(sqlc.narg(gender), p.gender),
        birth_date = coalesce(sqlc.narg(birth_date), p.birth_date),
        updated_at = now()
    FROM old
    WHERE p.id = old.id
      AND (coalesce(sqlc.narg(given_name), old.given_name) IS DISTINCT FROM old.given_name
        OR coalesce(sqlc.narg(family_name), old.family_name) IS DISTINCT FROM old.family_name
        OR coalesce(sqlc.narg(gender), old.gender) IS DISTINCT FROM old.gender
        OR coalesce(sqlc.narg(birth_date), old.birth_date) IS DISTINCT FROM old.birth_date)
    RETURNING p.id
)
SELECT count(*) > 0 AS changed FROM upd;
