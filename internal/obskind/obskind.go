// Package obskind is the catalogue of observation kinds — each kind's
// LOINC code and display, observation category and the UCUM units
// record_observation accepts — read from its one source, the
// switchboard.observation_kinds table. Migrations add and change kinds;
// Go keeps no copy of codes or units. What only one integration knows
// stays there, keyed by the code or kind: the FHIR profiles and alternative
// codes per LOINC code (internal/fhir), wearable plausibility ranges
// (internal/wearables).
package obskind

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/switchboard-health/switchboard/db"
)

// Kind is one row of switchboard.observation_kinds.
type Kind struct {
	Name     string
	LOINC    string
	Display  string
	Category string // observation-category code: vital-signs or activity
	// Units are the UCUM codes record_observation accepts for the kind.
	Units []string
}

// Catalog is every observation kind, by name and by LOINC code.
type Catalog struct {
	byName  map[string]Kind
	byLOINC map[string]Kind
}

// New returns a catalogue of kinds (Load reads the real one).
func New(kinds ...Kind) *Catalog {
	c := &Catalog{byName: map[string]Kind{}, byLOINC: map[string]Kind{}}
	for _, k := range kinds {
		c.byName[k.Name] = k
		c.byLOINC[k.LOINC] = k
	}
	return c
}

// Load reads the catalogue from switchboard.observation_kinds. It returns
// the database's error, wrapped.
func Load(ctx context.Context, q db.DBTX) (*Catalog, error) {
	rows, err := db.New().ObservationKindList(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("error loading observation kinds: %w", err)
	}
	kinds := make([]Kind, 0, len(rows))
	for _, r := range rows {
		kinds = append(kinds, Kind{Name: r.Kind, LOINC: r.LoincCode, Display: r.LoincDisplay, Category: r.Category, Units: r.Units})
	}
	return New(kinds...), nil
}

// Kind returns the kind named name.
func (c *Catalog) Kind(name string) (Kind, bool) {
	k, ok := c.byName[name]
	return k, ok
}

// ByLOINC returns the kind whose LOINC code is code.
func (c *Catalog) ByLOINC(code string) (Kind, bool) {
	k, ok := c.byLOINC[code]
	return k, ok
}

// Names lists every kind's name, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Source reads the catalogue once, when it is first needed, so a worker
// can be built before the database answers. Safe for concurrent use.
type Source struct {
	q  db.DBTX
	mu sync.Mutex
	c  *Catalog
}

// NewSource returns a Source reading from q.
func NewSource(q db.DBTX) *Source { return &Source{q: q} }

// Get returns the catalogue, loading it on first use; after an error the
// next call tries again. It returns Load's error.
func (s *Source) Get(ctx context.Context) (*Catalog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, nil
	}
	c, err := Load(ctx, s.q)
	if err != nil {
		return nil, err
	}
	s.c = c
	return c, nil
}
