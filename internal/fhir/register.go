package fhir

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// Register adds the FHIR workers (fhir_push, fhir_pull, fhir_pull_schedule)
// to workers and returns the periodic jobs to give the River client. It
// returns an error for incomplete deps or a FHIR_JSON_SCHEMA that does not
// compile.
func Register(ctx context.Context, workers *river.Workers, d Deps) ([]*river.PeriodicJob, error) {
	push, err := NewPushWorker(d)
	if err != nil {
		return nil, err
	}
	pull, err := NewPullWorker(d)
	if err != nil {
		return nil, err
	}
	limits := d.UnavailableLimits
	if limits == nil {
		return nil, errors.New("fhir: Deps.UnavailableLimits is required (worker.UnavailableLimits reads them)")
	}
	if limit := limits[jobs.KindFHIRPush]; limit > 0 {
		push.UnavailableLimit = limit
	}
	if limit := limits[jobs.KindFHIRPull]; limit > 0 {
		pull.UnavailableLimit = limit
	}
	if err := river.AddWorkerSafely(workers, push); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, pull); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &ScheduleWorker{pool: d.Pool}); err != nil {
		return nil, err
	}
	every := push.deps.Config.PullScheduleEvery
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.FHIRPullScheduleArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})}, nil
}

// ScheduleWorker works fhir_pull_schedule: it enqueues due pulls.
type ScheduleWorker struct {
	river.WorkerDefaults[jobs.FHIRPullScheduleArgs]
	pool *pgxpool.Pool
}

// Work enqueues a fhir_pull for every enabled endpoint and pull type due.
func (w *ScheduleWorker) Work(ctx context.Context, _ *river.Job[jobs.FHIRPullScheduleArgs]) error {
	if _, err := db.New().FHIRSchedulePulls(ctx, w.pool); err != nil {
		return fmt.Errorf("error scheduling fhir pulls: %w", err)
	}
	return nil
}

// ErrBadSecret is returned by Notify for an unknown endpoint or a wrong
// shared secret: nothing was stored.
var ErrBadSecret = errors.New("fhir: unknown endpoint or bad shared secret")

// HashSecret is how webhook shared secrets are stored.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Notify handles an R4 rest-hook notification for an endpoint: it checks
// the shared secret and enqueues a pull of resourceType (every pull type of
// the endpoint when empty, or when the notification named a type the
// endpoint does not pull). It returns ErrBadSecret when the endpoint is
// unknown, disabled or the secret does not match; then nothing is written.
func Notify(ctx context.Context, pool *pgxpool.Pool, endpointName, secret, resourceType string) (int, error) {
	q := db.New()
	ep, err := NotifyAuthenticate(ctx, pool, endpointName, secret)
	if err != nil {
		return 0, err
	}
	types := ep.PullTypes
	if resourceType != "" && slices.Contains(ep.PullTypes, resourceType) {
		types = []string{resourceType}
	}
	n := 0
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, t := range types {
			id, err := q.FHIREnqueuePull(ctx, tx, db.FHIREnqueuePullParams{EndpointID: ep.ID, ResourceType: t})
			if err != nil {
				return err
			}
			if id != 0 {
				n++
			}
		}
		return nil
	})
	return n, err
}

// NotifyAuthenticate checks a rest-hook notification's shared secret and
// returns its endpoint; ErrBadSecret when the endpoint is unknown, disabled
// or the secret does not match.
func NotifyAuthenticate(ctx context.Context, pool *pgxpool.Pool, endpointName, secret string) (db.EHREndpoint, error) {
	ep, err := db.New().EHREndpointGetByName(ctx, pool, endpointName)
	if errors.Is(err, pgx.ErrNoRows) {
		subtle.ConstantTimeCompare(HashSecret(secret), make([]byte, 32))
		return ep, ErrBadSecret
	}
	if err != nil {
		return ep, err
	}
	if len(ep.WebhookSecretHash) == 0 || secret == "" || subtle.ConstantTimeCompare(HashSecret(secret), ep.WebhookSecretHash) != 1 || !ep.Enabled {
		return ep, ErrBadSecret
	}
	return ep, nil
}

// ParseNotification reads a non-empty rest-hook body: ok is false when it
// is not a JSON object naming a FHIR resource type (a malformed
// notification); otherwise it returns NotificationType.
func ParseNotification(body []byte) (resourceType string, ok bool) {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(body, &r) != nil || !reResourceType.MatchString(r.ResourceType) {
		return "", false
	}
	return NotificationType(body), true
}

// NotificationType returns the resource type a rest-hook body names: the
// resource itself, or the first entry of a notification Bundle. Empty when
// none can be read.
func NotificationType(body []byte) string {
	var r struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &r) != nil {
		return ""
	}
	if r.ResourceType == "Bundle" {
		for _, e := range r.Entry {
			if t := e.Resource.ResourceType; t != "" && t != "SubscriptionStatus" && t != "Parameters" {
				return t
			}
		}
		return ""
	}
	return r.ResourceType
}
