package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The checks read River's and Switchboard's tables as an outside observer
// would, across both at once; their SQL is not part of the service, so it
// lives here rather than in queries/ (sqlc).

// finalStatuses are the message statuses nothing moves on from.
var finalStatuses = []string{"delivered", "undelivered", "failed", "blocked_opted_out", "expired", "cancelled"}

// Why a message that is not final is still legitimately on its way.
const (
	pendAccepted    = "accepted, final report pending"   // the provider has it; a callback or sms_reconcile ends it
	pendWaiting     = "job available"                    // waiting for a worker
	pendBackoff     = "job retryable with attempts left" // River backoff after an error
	pendScheduled   = "job scheduled"                    // snoozed: throttled, in-flight grace, rate slot
	pendUnavailable = "snoozed, destination unavailable" // breaker open, within job_kinds.unavailable_limit
	pendRunning     = "job running"                      // a live worker has it
	pendRescue      = "left running by a killed worker"  // River's rescuer takes it back after WORKER_RESCUE_AFTER
)

// Why a message is lost (or stuck, which fails the run the same way).
const (
	lostNoRow        = "committed send_sms has no messages row"
	lostNoJob        = "no job and no final status"
	lostCompleted    = "job completed, message neither accepted nor final"
	lostNoDeadLetter = "job ended (cancelled/discarded) without a dead letter"
	lostStuck        = "job running past WORKER_RESCUE_AFTER and the rescuer's interval"
	lostOutOfTries   = "job retryable with no attempt left"
)

// checkParams are the settings the checks judge by.
type checkParams struct {
	run              string
	rescueAfter      time.Duration // WORKER_RESCUE_AFTER as the worker applies it
	rescueInterval   time.Duration // River's rescuer runs this often (30 s)
	sendTimeout      time.Duration // SMS_SEND_TIMEOUT
	unavailableLimit time.Duration // job_kinds.unavailable_limit of sms_send
	checkPause       time.Duration // between tries of a check that failed (checkPause when 0)
}

// msgRow is a message and its job, dead letter and attempts.
type msgRow struct {
	ID           int64
	Key          string
	To           string
	Status       string
	Reason       string
	Provider     string // the provider of the copy the message adopted
	ProviderID   string
	JobState     string // "" when the job row is gone
	Attempt      int
	MaxAttempts  int
	AttemptedAt  *time.Time
	ScheduledAt  *time.Time
	Metadata     map[string]any
	DeadClass    string
	Rescued      bool
	Attempts     []attemptRow
	ProviderSent []sent
}

type attemptRow struct {
	ID                int64
	Provider          string
	Outcome           string // "" while unknown
	StartedAt         time.Time
	ProviderMessageID string
	JobID, JobAttempt int64 // the run of the job that made it (0 when unknown)
}

// Duplicate is a message sent more than once: a provider (or two) holds
// more than one copy of it, or more than one of its attempts claims a
// copy. None is allowed; Why says which.
type Duplicate struct {
	MessageID int64
	Copies    int
	Attempts  string // the attempts in order: provider:outcome[:provider id]
	Why       string
}

// DeadLetter is one dead letter of the run and whether its cause is
// expected.
type DeadLetter struct {
	ID       int64
	Kind     string
	Class    string
	Subject  string
	Error    string
	Expected bool
	Why      string
}

// Check is what the end-of-run checks found.
type Check struct {
	Enqueues        map[string]int // committed, unknown, failed
	UnknownPresent  int            // unknown enqueues whose row exists (the COMMIT had succeeded)
	Messages        int            // rows of this run
	ByStatus        map[string]int // final statuses
	Pending         map[string]int // why not final yet (legitimate)
	PendingExamples map[string][]int64
	Lost            map[string][]int64
	DeadLetters     []DeadLetter
	Duplicates      []Duplicate
	Misattributed   []string // provider copies that belong to another message (body, ?m= or adoption)
	Unattributed    []string // provider copies no attempt of their message accounts for
	Held            []int64  // messages held for an operator (attempt outcome held): not lost, not sent twice
	ProviderCopies  map[string]int
	Rescued         int // sms_send jobs the rescuer took back from killed workers
	ValidCommitted  int
	ValidDelivered  int
	ValidNotDeliv   map[string]int // where the valid messages that were not delivered are
}

// LostCount is the number of lost (or stuck) messages.
func (c *Check) LostCount() int {
	n := 0
	for _, ids := range c.Lost {
		n += len(ids)
	}
	return n
}

// UnexplainedDuplicates counts the messages sent more than once. The
// strict checker explains none away: an ambiguous attempt must be
// reconciled (or held for an operator), never followed by a second copy.
func (c *Check) UnexplainedDuplicates() int { return len(c.Duplicates) }

// UnexpectedDeadLetters counts dead letters whose cause is not permanent
// (or not the permanent cause the run planted).
func (c *Check) UnexpectedDeadLetters() int {
	n := 0
	for _, d := range c.DeadLetters {
		if !d.Expected {
			n++
		}
	}
	return n
}

// DeadLettersByClass counts dead letters by class.
func (c *Check) DeadLettersByClass() map[string]int {
	m := map[string]int{}
	for _, d := range c.DeadLetters {
		m[d.Class]++
	}
	return m
}

// DeliveredShare is delivered valid messages over committed valid ones.
func (c *Check) DeliveredShare() float64 {
	if c.ValidCommitted == 0 {
		return 0
	}
	return float64(c.ValidDelivered) / float64(c.ValidCommitted)
}

// runCheck compares what the app committed, what the database holds and
// what the providers received.
func runCheck(ctx context.Context, pool *pgxpool.Pool, p checkParams, enq []enqueue, copies []sent, now time.Time) (*Check, error) {
	rows, err := loadRows(ctx, pool, "chaos-"+p.run+"-")
	if err != nil {
		return nil, err
	}
	c := &Check{
		Enqueues: map[string]int{}, ByStatus: map[string]int{}, Pending: map[string]int{},
		PendingExamples: map[string][]int64{}, Lost: map[string][]int64{}, ProviderCopies: map[string]int{},
		ValidNotDeliv: map[string]int{}, Messages: len(rows),
	}
	byKey := make(map[string]*msgRow, len(rows))
	byID := make(map[int64]*msgRow, len(rows))
	for _, r := range rows {
		byKey[r.Key], byID[r.ID] = r, r
	}
	kindOf := map[string]string{}
	for _, e := range enq {
		c.Enqueues[cmp.Or(e.state, "in_flight")]++
		kindOf[e.key] = e.kind
		_, present := byKey[e.key]
		switch {
		case e.state == enqCommitted && !present:
			c.Lost[lostNoRow] = append(c.Lost[lostNoRow], int64(e.n))
		case e.state == enqCommitted && e.kind == kindValid:
			c.ValidCommitted++
		case e.state == enqUnknown && present:
			c.UnknownPresent++
			if e.kind == kindValid {
				c.ValidCommitted++
			}
		}
	}

	attributeCopies(c, p, rows, byID, copies)

	for _, r := range rows {
		if r.Rescued {
			c.Rescued++
		}
		if d, twice := sentTwice(r); twice {
			c.Duplicates = append(c.Duplicates, d)
		}
		if isHeld(r) {
			c.Held = append(c.Held, r.ID)
		}
		kind := kindOf[r.Key]
		if kind == kindValid {
			if r.Status == "delivered" {
				c.ValidDelivered++
			} else {
				c.ValidNotDeliv[whereIs(r, p, now)]++
			}
		}
		if slices.Contains(finalStatuses, r.Status) {
			c.ByStatus[r.Status]++
			continue
		}
		if r.DeadClass != "" {
			continue // counted with the dead letters
		}
		if why, legit := pendingReason(r, p, now); legit {
			c.Pending[why]++
			if len(c.PendingExamples[why]) < 5 {
				c.PendingExamples[why] = append(c.PendingExamples[why], r.ID)
			}
		} else {
			c.Lost[why] = append(c.Lost[why], r.ID)
		}
	}

	dls, err := loadDeadLetters(ctx, pool)
	if err != nil {
		return nil, err
	}
	for _, d := range dls {
		d.Expected, d.Why = judgeDeadLetter(d, byID, kindOf)
		c.DeadLetters = append(c.DeadLetters, d)
	}
	return c, nil
}

// whereIs says where a valid message that was not delivered is.
func whereIs(r *msgRow, p checkParams, now time.Time) string {
	switch {
	case slices.Contains(finalStatuses, r.Status):
		// A valid message only ends so by the provider's report (the
		// sandboxes' planned share of undelivered and failed messages).
		return "final " + r.Status + cmpOrPrefix(" (", r.Reason, ")") + " reported by the provider"
	case r.DeadClass != "":
		return "dead letter " + r.DeadClass
	}
	why, _ := pendingReason(r, p, now)
	return why
}

func cmpOrPrefix(pre, s, post string) string {
	if s == "" {
		return ""
	}
	return pre + s + post
}

// pendingReason says why a message is not final and whether that is a
// legitimate state (still on its way) or a loss.
func pendingReason(r *msgRow, p checkParams, now time.Time) (string, bool) {
	if r.ProviderID != "" {
		return pendAccepted, true
	}
	switch r.JobState {
	case "":
		return lostNoJob, false
	case "available", "pending":
		return pendWaiting, true
	case "scheduled":
		if s, ok := r.Metadata["unavailable_since"].(string); ok {
			if since, err := time.Parse(time.RFC3339Nano, s); err == nil && (p.unavailableLimit == 0 || now.Sub(since) < p.unavailableLimit+time.Minute) {
				return pendUnavailable, true
			}
		}
		if h, ok := r.Metadata["hold_reason"].(string); ok && h != "" {
			// Why, as River UI shows it (resilience.HoldFor).
			return pendScheduled + " (" + h + ")", true
		}
		return pendScheduled, true
	case "retryable":
		if r.Attempt < r.MaxAttempts {
			return pendBackoff, true
		}
		return lostOutOfTries, false
	case "running":
		if r.AttemptedAt == nil || now.Sub(*r.AttemptedAt) < p.sendTimeout+10*time.Second {
			return pendRunning, true
		}
		// No live worker runs a job past its timeout: this one's worker was
		// killed. The rescuer takes it back once it is RescueAfter old, on
		// its next round; leader re-election may add a few seconds.
		if now.Sub(*r.AttemptedAt) < p.rescueAfter+p.rescueInterval+30*time.Second {
			return pendRescue, true
		}
		return lostStuck, false
	case "completed":
		return lostCompleted, false
	default: // cancelled, discarded without a dead letter row
		return lostNoDeadLetter, false
	}
}

// attributeCopies attributes every provider-side copy to an attempt of
// the message it belongs to. A copy belongs to the message named by the
// ?m=<id> the worker puts on every status-callback URL, and its body must
// be that message's (bodies are unique per run). It is accounted for by
// the attempt that recorded its provider id, or else by an attempt on the
// same provider still without an answer (no outcome, ambiguous, or held
// for an operator), one copy each. Anything else fails the run: a copy
// without ?m= or that no attempt accounts for (Unattributed), and a copy
// whose body, ?m= or adopting attempt says it is another message's
// (Misattributed). There is no excuse by outcome: an attempt reconciled
// absent whose copy exists is a wrong reconciliation.
func attributeCopies(c *Check, p checkParams, rows []*msgRow, byID map[int64]*msgRow, copies []sent) {
	// Who claims each copy: attempts and messages that recorded its id.
	claims := map[string][]int64{}
	claim := func(provider, id string, msg int64) {
		k := provider + "/" + id
		if !slices.Contains(claims[k], msg) {
			claims[k] = append(claims[k], msg)
		}
	}
	for _, r := range rows {
		for _, a := range r.Attempts {
			if a.ProviderMessageID != "" {
				claim(a.Provider, a.ProviderMessageID, r.ID)
			}
		}
		if r.ProviderID != "" {
			claim(r.Provider, r.ProviderID, r.ID)
		}
	}
	held := map[string]bool{} // provider/id of every copy a provider holds
	absorbed := map[int64]bool{}
	for _, s := range copies {
		c.ProviderCopies[s.Provider]++
		held[s.Provider+"/"+s.ID] = true
		name := s.Provider + " " + s.ID
		if s.MessageID == 0 {
			c.Unattributed = append(c.Unattributed, name+": callback URL carries no ?m=")
			continue
		}
		r, ok := byID[s.MessageID]
		if !ok {
			c.Misattributed = append(c.Misattributed, fmt.Sprintf("%s: callback names message %d, not this run's", name, s.MessageID))
			continue
		}
		if n := strings.TrimPrefix(r.Key, "chaos-"+p.run+"-"); !strings.Contains(s.Body, " #"+strings.TrimLeft(n, "0")+":") {
			c.Misattributed = append(c.Misattributed, fmt.Sprintf("%s: callback names message %d, body is another message's", name, s.MessageID))
			continue
		}
		r.ProviderSent = append(r.ProviderSent, s)
		for _, other := range claims[s.Provider+"/"+s.ID] {
			if other != r.ID {
				c.Misattributed = append(c.Misattributed, fmt.Sprintf("%s: copy of message %d adopted by message %d", name, r.ID, other))
			}
		}
		if !slices.Contains(claims[s.Provider+"/"+s.ID], r.ID) && !absorbOpenAttempt(r, s.Provider, absorbed) {
			c.Unattributed = append(c.Unattributed, fmt.Sprintf("%s: copy of message %d that no attempt accounts for (attempts %s)", name, r.ID, describeAttempts(r)))
		}
	}
	// A message that adopted a copy no provider holds reports another's
	// status, or none.
	for _, r := range rows {
		for _, a := range r.Attempts {
			if a.ProviderMessageID != "" && !held[a.Provider+"/"+a.ProviderMessageID] {
				c.Misattributed = append(c.Misattributed, fmt.Sprintf("message %d: attempt %d records %s %s, which the provider does not hold", r.ID, a.ID, a.Provider, a.ProviderMessageID))
			}
		}
		if r.ProviderID != "" && !held[r.Provider+"/"+r.ProviderID] {
			c.Misattributed = append(c.Misattributed, fmt.Sprintf("message %d: records %s %s, which the provider does not hold", r.ID, r.Provider, r.ProviderID))
		}
	}
}

// attemptOpen reports an outcome that leaves open whether the provider
// holds a copy.
func attemptOpen(outcome string) bool {
	return outcome == "" || outcome == "ambiguous" || outcome == outcomeHeld
}

// outcomeHeld is the attempt outcome of a message whose reconciliation
// could not decide: held for an operator, never resent.
const outcomeHeld = "held"

// absorbOpenAttempt accounts for a copy by an attempt of r on provider
// that is still open and has no provider id, each such attempt once.
func absorbOpenAttempt(r *msgRow, provider string, used map[int64]bool) bool {
	for _, a := range r.Attempts {
		if a.Provider == provider && a.ProviderMessageID == "" && attemptOpen(a.Outcome) && !used[a.ID] {
			used[a.ID] = true
			return true
		}
	}
	return false
}

// sentTwice reports a message sent more than once: more than one copy at
// the providers, more than one accepted attempt, or attempts that claim
// more than one distinct copy.
func sentTwice(r *msgRow) (Duplicate, bool) {
	accepted := 0
	claimed := map[string]bool{}
	for _, a := range r.Attempts {
		if a.Outcome == "accepted" {
			accepted++
		}
		if a.ProviderMessageID != "" {
			claimed[a.Provider+"/"+a.ProviderMessageID] = true
		}
	}
	d := Duplicate{MessageID: r.ID, Copies: len(r.ProviderSent), Attempts: describeAttempts(r)}
	var why []string
	if len(r.ProviderSent) > 1 {
		why = append(why, fmt.Sprintf("%d copies at the providers", len(r.ProviderSent)))
	}
	if accepted > 1 {
		why = append(why, fmt.Sprintf("%d accepted attempts", accepted))
	}
	if len(claimed) > 1 {
		why = append(why, fmt.Sprintf("attempts record %d provider ids", len(claimed)))
	}
	d.Why = strings.Join(why, ", ")
	return d, len(why) > 0
}

// isHeld reports a message held for an operator.
func isHeld(r *msgRow) bool {
	if r.DeadClass == deadHeld {
		return true
	}
	return slices.ContainsFunc(r.Attempts, func(a attemptRow) bool { return a.Outcome == outcomeHeld })
}

// deadHeld is the dead-letter class of a message held for an operator.
const deadHeld = "reconcile_undecided"

func describeAttempts(r *msgRow) string {
	parts := make([]string, 0, len(r.Attempts))
	for _, a := range r.Attempts {
		s := a.Provider + ":" + cmp.Or(a.Outcome, "unknown")
		if a.ProviderMessageID != "" {
			s += ":" + a.ProviderMessageID
		}
		// The attempt row and the job run that wrote it, for the operator
		// who looks it up in message_attempts.
		s += fmt.Sprintf("(attempt %d, job %d run %d, %s)", a.ID, a.JobID, a.JobAttempt, a.StartedAt.UTC().Format("15:04:05.000"))
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// judgeDeadLetter decides whether a dead letter has an expected cause: a
// permanent error the run planted (the magic recipient 21408), or any
// permanent cause of a job that is not about one of the run's valid
// messages.
func judgeDeadLetter(d DeadLetter, byID map[int64]*msgRow, kindOf map[string]string) (bool, string) {
	if d.Kind == "fhir_push" {
		// The run plants no permanent cause for FHIR: the peer accepts
		// every resource Switchboard sends. One rule makes a transient
		// fault final by design (reference/fhir.md: "500: a few times,
		// then dead-letter"): a 500 on the 4th attempt. With a share s of
		// injected 500s a push meets it with probability about s⁴.
		if d.Class == "permanent" && strings.Contains(d.Error, "HTTP 500") {
			return true, "HTTP 500 on the 4th attempt: the documented 500 rule, met through injected 500s"
		}
		return false, "no permanent cause is planted for FHIR pushes"
	}
	if d.Class == deadHeld {
		return true, "held for an operator: reconciliation could not decide whether the provider holds a copy (not lost, not resent)"
	}
	id, isMessage := strings.CutPrefix(d.Subject, "message/")
	if !isMessage {
		if d.Class == "permanent" {
			return true, "permanent cause outside the run's messages"
		}
		return false, "class " + d.Class + " is not a permanent cause"
	}
	mid, _ := strconv.ParseInt(id, 10, 64)
	r, ok := byID[mid]
	if !ok {
		return d.Class == "permanent", "not a message of this run"
	}
	switch kind := kindOf[r.Key]; {
	case kind == kindPermanent && d.Class == "permanent":
		return true, "planted permanent cause (region not enabled, 21408)"
	case d.Class == "permanent":
		return false, "permanent dead letter for a " + kind + " message"
	default:
		return false, "class " + d.Class + " for a " + kind + " message"
	}
}

func loadRows(ctx context.Context, pool *pgxpool.Pool, prefix string) ([]*msgRow, error) {
	rows, err := pool.Query(ctx, `
SELECT m.id, m.idempotency_key, m.to_e164, m.status, coalesce(m.error_reason, ''), coalesce(m.provider, ''), coalesce(m.provider_message_id, ''),
       coalesce(j.state::text, ''), coalesce(j.attempt, 0), coalesce(j.max_attempts, 0), j.attempted_at, j.scheduled_at,
       coalesce(j.metadata, '{}'), coalesce(d.class, ''),
       coalesce(EXISTS (SELECT 1 FROM unnest(j.errors) e WHERE e->>'error' LIKE 'Stuck job rescued%'), false)
FROM switchboard.messages m
LEFT JOIN switchboard.river_job j ON j.id = m.job_id
LEFT JOIN LATERAL (SELECT class FROM switchboard.dead_letters d WHERE d.job_id = m.job_id ORDER BY id DESC LIMIT 1) d ON true
WHERE m.idempotency_key LIKE $1 || '%'
ORDER BY m.id`, prefix)
	if err != nil {
		return nil, fmt.Errorf("error reading messages: %w", err)
	}
	defer rows.Close()
	var out []*msgRow
	byID := map[int64]*msgRow{}
	for rows.Next() {
		r := &msgRow{}
		var meta []byte
		if err := rows.Scan(&r.ID, &r.Key, &r.To, &r.Status, &r.Reason, &r.Provider, &r.ProviderID, &r.JobState, &r.Attempt, &r.MaxAttempts,
			&r.AttemptedAt, &r.ScheduledAt, &meta, &r.DeadClass, &r.Rescued); err != nil {
			return nil, fmt.Errorf("error reading messages: %w", err)
		}
		_ = json.Unmarshal(meta, &r.Metadata)
		out = append(out, r)
		byID[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error reading messages: %w", err)
	}
	arows, err := pool.Query(ctx, `
SELECT a.message_id, a.id, a.provider, coalesce(a.outcome, ''), a.started_at, coalesce(a.provider_message_id, ''),
       coalesce(a.job_id, 0), coalesce(a.job_attempt, 0)
FROM switchboard.message_attempts a JOIN switchboard.messages m ON m.id = a.message_id
WHERE m.idempotency_key LIKE $1 || '%'
ORDER BY a.message_id, a.id`, prefix)
	if err != nil {
		return nil, fmt.Errorf("error reading attempts: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var id int64
		var a attemptRow
		if err := arows.Scan(&id, &a.ID, &a.Provider, &a.Outcome, &a.StartedAt, &a.ProviderMessageID, &a.JobID, &a.JobAttempt); err != nil {
			return nil, fmt.Errorf("error reading attempts: %w", err)
		}
		if r := byID[id]; r != nil {
			r.Attempts = append(r.Attempts, a)
		}
	}
	return out, arows.Err()
}

func loadDeadLetters(ctx context.Context, pool *pgxpool.Pool) ([]DeadLetter, error) {
	rows, err := pool.Query(ctx, `
SELECT id, kind, class, coalesce(subject, ''), coalesce(errors -> -1 ->> 'error', '')
FROM switchboard.dead_letters ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("error reading dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var d DeadLetter
		if err := rows.Scan(&d.ID, &d.Kind, &d.Class, &d.Subject, &d.Error); err != nil {
			return nil, fmt.Errorf("error reading dead letters: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// unsettled counts this run's messages that are neither final nor dead
// letters: the drain waits for it to reach zero.
func unsettled(ctx context.Context, pool *pgxpool.Pool, prefix string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `
SELECT count(*) FROM switchboard.messages m
WHERE m.idempotency_key LIKE $1 || '%'
  AND m.status <> ALL ($2)
  AND NOT EXISTS (SELECT 1 FROM switchboard.dead_letters d WHERE d.job_id = m.job_id)`, prefix, finalStatuses).Scan(&n)
	return n, err
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
