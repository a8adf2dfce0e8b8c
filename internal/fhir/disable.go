package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// HoldSnooze is how long a push for a disabled endpoint waits before it
// looks again (no attempt spent, held for as long as the endpoint is
// disabled); `ehr enable` wakes the held pushes at once, oldest first.
const HoldSnooze = 15 * time.Minute

// held is the outcome of a push to a disabled endpoint: snoozed like a
// paused destination, or, for an endpoint retired with `ehr disable
// --drop`, a dead letter saying so.
func (w *PushWorker) held(ctx context.Context, ep *Endpoint, job *rivertype.JobRow, a jobs.FHIRPushArgs) error {
	if ep.Row.RetiredAt != nil {
		return cancel(ctx, "permanent", &RecordError{ResourceType: "resource", Entity: a.Entity, EntityID: a.EntityID,
			Err: errors.New("dropped: ehr endpoint " + ep.Row.Name + " was retired (ehr disable --drop)")})
	}
	w.deps.Logger.InfoContext(ctx, "fhir push held: endpoint disabled", slog.Int64("job_id", job.ID), slog.String("endpoint", ep.Row.Name))
	return resilience.HoldFor(ctx, resilience.HoldEndpointDisabled, DestinationName(ep.Row.Name), HoldSnooze)
}

// SetEnabled enables or disables an endpoint with an audit entry. Disabling
// holds its pushes; enabling (which also undoes a retirement) makes every
// held push due now, oldest first.
func SetEnabled(ctx context.Context, pool *pgxpool.Pool, name string, enabled bool, actor string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := db.New()
		id, err := q.EHREndpointSetEnabled(ctx, tx, db.EHREndpointSetEnabledParams{Name: name, Enabled: enabled})
		if errors.Is(err, pgx.ErrNoRows) {
			return &InputError{"no EHR endpoint named " + name}
		} else if err != nil {
			return err
		}
		action, detail := "ehr.disable", []byte(`{}`)
		if enabled {
			action = "ehr.enable"
			if err := q.EHREndpointUnretire(ctx, tx, id); err != nil {
				return err
			}
			n, err := q.FHIRPushWakeHeld(ctx, tx, id)
			if err != nil {
				return err
			}
			detail, _ = json.Marshal(map[string]any{"pushes_woken": n})
		}
		return q.AuditInsert(ctx, tx, db.AuditInsertParams{Actor: actor, Action: action, TargetType: "ehr_endpoint", TargetID: name, Detail: detail})
	})
}

// DropEndpoint retires an endpoint (`ehr disable --drop`): disabled, no
// more pushes queued for it, and every held push woken to end as a dead
// letter naming the retirement. Audited with the number dropped.
func DropEndpoint(ctx context.Context, pool *pgxpool.Pool, name, actor string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := db.New()
		id, err := q.EHREndpointRetire(ctx, tx, name)
		if errors.Is(err, pgx.ErrNoRows) {
			return &InputError{"no EHR endpoint named " + name}
		} else if err != nil {
			return err
		}
		if n, err = q.FHIRPushWakeHeld(ctx, tx, id); err != nil {
			return err
		}
		detail, _ := json.Marshal(map[string]any{"pushes_dropped": n})
		return q.AuditInsert(ctx, tx, db.AuditInsertParams{Actor: actor, Action: "ehr.disable_drop", TargetType: "ehr_endpoint",
			TargetID: name, Detail: detail})
	})
	return n, err
}
