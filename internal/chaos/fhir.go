package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/fhir/fhirsandbox"
)

// FHIR pushes run through the same faults as the messages: the real FHIR
// R4 peer (Medplum's router over an in-memory store, internal/fhir/
// fhirsandbox) sits behind a fault injector, an EHR endpoint points at the
// injector, and a second stream records heart-rate observations through
// switchboard.record_observation — one app transaction each, which queues
// the fhir_push jobs in the same transaction.

// fhirEndpoint is the EHR endpoint the run registers.
const fhirEndpoint = "chaos-ehr"

// fhirPeer is the FHIR peer and its fault injector.
type fhirPeer struct {
	node   *fhirsandbox.Server
	faults *faulty
	ln     net.Listener
	srv    *http.Server
	client *http.Client
}

func startFHIRPeer(ctx context.Context, seed int64, mix FaultMix, logger *slog.Logger) (*fhirPeer, error) {
	node, err := fhirsandbox.Start(ctx)
	if err != nil {
		return nil, err
	}
	target, err := url.Parse(node.BaseURL)
	if err != nil {
		node.Stop()
		return nil, err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	writes := func(r *http.Request) bool {
		return r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch
	}
	f := newFaulty(proxy, seed^0xf41, writes, writeOperationOutcome)
	f.setMix(mix)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		node.Stop()
		return nil, err
	}
	p := &fhirPeer{node: node, faults: f, ln: ln, srv: &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second},
		client: &http.Client{Timeout: fhirListTimeout}}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// baseURL is the FHIR base the workers call: through the faults.
func (p *fhirPeer) baseURL() string { return "http://" + p.ln.Addr().String() + "/fhir" }

func (p *fhirPeer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	p.node.Stop()
}

func writeOperationOutcome(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []map[string]any{{"severity": "error", "code": "transient", "diagnostics": "chaos: injected fault"}},
	})
}

// The EHR is listed in pages of fhirPageSize, each page tried up to
// fhirPageTries times within fhirListTimeout: a listing of thousands of
// resources in one request outlived its client's timeout, and one slow
// page must not cost the verdict.
const (
	fhirPageSize  = 200
	fhirPageTries = 5
	fhirPagePause = time.Second
	// fhirListTimeout bounds one page: the in-memory peer scans every
	// resource it holds for each page, which under a loaded machine took
	// more than 10 s for 200 of ~8,000 observations (30-minute run).
	fhirListTimeout = time.Minute
)

// identifierCounts lists every resource of type rt the peer holds, asked
// directly (past the faults), following the server's next links, and
// counts them by their identifier value in system. A page that fails
// (transport error, 429, 5xx, a body cut short) is asked again.
func (p *fhirPeer) identifierCounts(ctx context.Context, rt, system string) (map[string]int, error) {
	counts := map[string]int{}
	next := fmt.Sprintf("%s/%s?_count=%d", p.node.BaseURL, rt, fhirPageSize)
	for pages := 0; next != ""; pages++ {
		if pages > 10000 {
			return nil, fmt.Errorf("listing %s: more than 10000 pages", rt)
		}
		var page fhirPage
		err := retry(ctx, fhirPageTries, fhirPagePause, p.client.Timeout+time.Second, func(ctx context.Context) (err error) {
			page, err = p.listPage(ctx, next)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing %s (page %d, %s): %w", rt, pages+1, next, err)
		}
		for _, e := range page.Entry {
			for _, id := range e.Resource.Identifier {
				if id.System == system {
					counts[id.Value]++
				}
			}
		}
		next = ""
		for _, l := range page.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	return counts, nil
}

// fhirPage is the part of a search Bundle the listing reads.
type fhirPage struct {
	Link []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource struct {
			Identifier []struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"identifier"`
		} `json:"resource"`
	} `json:"entry"`
}

func (p *fhirPeer) listPage(ctx context.Context, url string) (fhirPage, error) {
	var b fhirPage
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return b, permanent{err}
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := p.client.Do(req)
	if err != nil {
		return b, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return b, fmt.Errorf("HTTP %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return b, permanent{fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return b, err
	}
	return b, nil
}

// registerEndpoint adds the run's EHR endpoint (no auth, pushes patients and
// observations) the way `switchboard ehr add` does.
func registerEndpoint(ctx context.Context, pool *pgxpool.Pool, baseURL string) error {
	_, err := fhir.AddEndpoint(ctx, pool, nil, fhir.AddEndpointParams{
		Name: fhirEndpoint, BaseURL: baseURL, AuthKind: "none",
		PushTypes: []string{"Patient", "Observation"}, PullInterval: time.Hour,
	}, "chaos")
	if err != nil {
		return fmt.Errorf("error registering the EHR endpoint: %w", err)
	}
	return nil
}

// observation is one recorded observation as the client side saw it.
type observation struct {
	n        int
	sourceID string
	patient  string
	state    string // enqCommitted, enqUnknown, enqFailed
}

// obsStream records observations through switchboard.record_observation,
// one transaction each, retrying a transaction that failed with the same
// source_id (record_observation is idempotent on source and source_id).
type obsStream struct {
	pool     *pgxpool.Pool
	run      string
	patients []string
	retryFor time.Duration

	mu    sync.Mutex
	rng   *rand.Rand
	items []*observation
}

func newObsStream(pool *pgxpool.Pool, run string, seed int64) *obsStream {
	s := &obsStream{pool: pool, run: run, retryFor: 90 * time.Second, rng: rand.New(rand.NewPCG(uint64(seed), 0x0b5))}
	for i := range 20 {
		s.patients = append(s.patients, fmt.Sprintf("chaos-%s-patient-%02d", run, i))
	}
	return s
}

// createPatients commits the stream's patients (no PHI: references only).
func (s *obsStream) createPatients(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, ref := range s.patients {
			if _, err := tx.Exec(ctx, "SELECT switchboard.upsert_patient($1)", ref); err != nil {
				return fmt.Errorf("error creating patient: %w", err)
			}
		}
		return nil
	})
}

func (s *obsStream) next() *observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.items) + 1
	o := &observation{n: n, sourceID: fmt.Sprintf("chaos-%s-obs-%06d", s.run, n), patient: s.patients[s.rng.IntN(len(s.patients))]}
	s.items = append(s.items, o)
	return o
}

// runFor records observations at rate per second until ctx ends.
func (s *obsStream) runFor(ctx context.Context, rate float64) {
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 4)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		o := s.next()
		wg.Go(func() {
			defer func() { <-sem }()
			s.record(o)
		})
	}
}

// record commits one observation, retrying a failed transaction.
func (s *obsStream) record(o *observation) {
	deadline := time.Now().Add(s.retryFor)
	for {
		_, err := s.pool.Exec(context.Background(),
			"SELECT switchboard.record_observation($1, 'heart_rate', $2, '/min', now(), NULL, 'app', $3)",
			o.patient, 60+o.n%40, o.sourceID)
		s.mu.Lock()
		switch {
		case err == nil:
			o.state = enqCommitted
		case isUserError(err):
			o.state = enqFailed
		default:
			o.state = enqUnknown
		}
		done := err == nil || isUserError(err) || time.Now().After(deadline)
		s.mu.Unlock()
		if done {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (s *obsStream) snapshot() []observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]observation, len(s.items))
	for i, o := range s.items {
		out[i] = *o
	}
	return out
}

// FHIRCheck is what the end-of-run checks found for the FHIR pushes.
type FHIRCheck struct {
	Recorded   map[string]int // committed, unknown, failed
	Pushed     int            // observations the EHR holds, linked in fhir_links
	Pending    map[string]int // why not pushed yet (legitimate)
	Lost       map[string][]int64
	Duplicates []int64 // observations the EHR holds more than once
	Invalid    int     // observations Switchboard refused to send (fhir_links state invalid)
}

// LostCount is the number of lost observation pushes.
func (c *FHIRCheck) LostCount() int {
	n := 0
	for _, ids := range c.Lost {
		n += len(ids)
	}
	return n
}

const (
	lostNoObservation = "committed record_observation has no observations row"
	lostNotAtEHR      = "linked as pushed but the EHR does not hold it"
)

// checkFHIR judges every observation of the stream: pushed once, or its
// push job legitimately still on its way; anything else is lost. Every
// pushed one is counted at the EHR by its business identifier.
func checkFHIR(ctx context.Context, pool *pgxpool.Pool, p checkParams, peer *fhirPeer, obs []observation, now time.Time) (*FHIRCheck, error) {
	c := &FHIRCheck{Recorded: map[string]int{}, Pending: map[string]int{}, Lost: map[string][]int64{}}
	var system string
	if err := pool.QueryRow(ctx, "SELECT coalesce(identifier_system, '') FROM switchboard.ehr_endpoints WHERE name = $1", fhirEndpoint).Scan(&system); err != nil {
		return nil, err
	}
	if system == "" {
		// The workers run without FHIR_IDENTIFIER_SYSTEM: the deployment's own.
		var err error
		if system, err = fhir.DeploymentSystem(ctx, pool); err != nil {
			return nil, err
		}
	}
	held, err := peer.identifierCounts(ctx, "Observation", system)
	if err != nil {
		return nil, fmt.Errorf("error listing the EHR's observations: %w", err)
	}
	type pushRow struct {
		id        int64
		linkState *string
		job       msgRow
	}
	sourceIDs := make([]string, 0, len(obs))
	for _, o := range obs {
		if o.state != enqFailed {
			sourceIDs = append(sourceIDs, o.sourceID)
		}
	}
	rows, err := pool.Query(ctx, `
		SELECT o.source_id, o.id, l.state, coalesce(j.state::text, ''), coalesce(j.attempt, 0), coalesce(j.max_attempts, 0), j.attempted_at,
		       coalesce(j.metadata, '{}'), coalesce(d.class, '')
		FROM switchboard.observations o
		JOIN switchboard.ehr_endpoints e ON e.name = $2
		LEFT JOIN switchboard.fhir_links l ON l.endpoint_id = e.id AND l.entity = 'observation' AND l.entity_id = o.id
		LEFT JOIN LATERAL (SELECT * FROM switchboard.river_job j WHERE j.kind = 'fhir_push'
			AND j.args @> jsonb_build_object('endpoint_id', e.id, 'entity', 'observation', 'entity_id', o.id)
			ORDER BY j.id DESC LIMIT 1) j ON true
		LEFT JOIN switchboard.dead_letters d ON d.job_id = j.id
		WHERE o.source = 'app' AND o.source_id = ANY ($1)`, sourceIDs, fhirEndpoint)
	if err != nil {
		return nil, err
	}
	found := map[string]*pushRow{}
	for rows.Next() {
		var (
			sourceID string
			r        pushRow
			metadata []byte
		)
		if err := rows.Scan(&sourceID, &r.id, &r.linkState, &r.job.JobState, &r.job.Attempt, &r.job.MaxAttempts,
			&r.job.AttemptedAt, &metadata, &r.job.DeadClass); err != nil {
			rows.Close()
			return nil, err
		}
		_ = json.Unmarshal(metadata, &r.job.Metadata)
		found[sourceID] = &r
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, o := range obs {
		c.Recorded[o.state]++
		if o.state == enqFailed {
			continue
		}
		r := found[o.sourceID]
		switch {
		case r == nil:
			if o.state == enqCommitted {
				c.Lost[lostNoObservation] = append(c.Lost[lostNoObservation], int64(o.n))
			}
		case r.linkState != nil && *r.linkState == "invalid":
			c.Invalid++
		case r.linkState != nil:
			c.Pushed++
			switch n := held[fmt.Sprintf("observation-%d", r.id)]; {
			case n > 1:
				c.Duplicates = append(c.Duplicates, r.id)
			case n == 0:
				c.Lost[lostNotAtEHR] = append(c.Lost[lostNotAtEHR], r.id)
			}
		case r.job.DeadClass != "":
			// Judged with the run's dead letters.
		default:
			if why, legit := pendingReason(&r.job, p, now); legit {
				c.Pending[why]++
			} else {
				c.Lost[why] = append(c.Lost[why], r.id)
			}
		}
	}
	return c, nil
}

// unpushed counts the observations whose push to the run's endpoint is
// neither linked nor dead-lettered.
func unpushed(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `
		SELECT count(*) FROM switchboard.observations o
		JOIN switchboard.ehr_endpoints e ON e.name = $1
		WHERE NOT EXISTS (SELECT 1 FROM switchboard.fhir_links l WHERE l.endpoint_id = e.id AND l.entity = 'observation' AND l.entity_id = o.id)
		  AND NOT EXISTS (SELECT 1 FROM switchboard.dead_letters d JOIN switchboard.river_job j ON j.id = d.job_id
		                  WHERE j.kind = 'fhir_push' AND j.args @> jsonb_build_object('entity', 'observation', 'entity_id', o.id))`,
		fhirEndpoint).Scan(&n)
	return n, err
}
