-- name: AuditInsert :exec
INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
VALUES (@actor, @action, @target_type, @target_id, @detail);

-- name: AuditListByTarget :many
SELECT * FROM switchboard.audit_log WHERE target_type = @target_type AND target_id = @target_id ORDER BY id;
