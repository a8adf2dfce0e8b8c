package fhir

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// RecordError names the record a failed push was about: the resource type
// and Switchboard's entity and id (never a value), so a dead letter says
// which record to look at.
type RecordError struct {
	ResourceType string // Patient
	Entity       string // patient
	EntityID     int64
	// ResourceID is the server's id once linked.
	ResourceID string
	Err        error
}

func (e *RecordError) Error() string {
	s := fmt.Sprintf("%s for %s %d", e.ResourceType, e.Entity, e.EntityID)
	if e.ResourceID != "" {
		s += " (" + e.ResourceType + "/" + e.ResourceID + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *RecordError) Unwrap() error { return e.Err }

// ConflictError: the resource kept changing on the server between
// Switchboard's read and its write, more often than
// FHIR_MAX_CONFLICT_RETRIES allows. Permanent: a person should look.
type ConflictError struct {
	Merges int
	Err    error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("changed on the server by someone else at every one of %d read-merge-write rounds: %v", e.Merges, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// diagnostics keeps an OperationOutcome's human text (diagnostics and
// details.text) with every value scrubbed: quoted text, numbers and dates,
// and any value of the resource sent (sent) become "…". Servers echo what
// they were sent in these texts; what stays is the server's wording and
// element paths.
func diagnostics(body, sent []byte) []string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Diagnostics string `json:"diagnostics"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return nil
	}
	values := leafValues(sent)
	var out []string
	for _, is := range oo.Issue {
		for _, t := range []string{is.Diagnostics, is.Details.Text} {
			if len(out) >= 5 {
				return out
			}
			if s := Scrub(t, values); s != "" && !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

var (
	reQuoted = regexp.MustCompile(`'[^']*'|"[^"]*"|“[^”]*”|‘[^’]*’|` + "`[^`]*`")
	// Numbers, dates, times, phone numbers — but not an index in a path (name[0]).
	reNumber = regexp.MustCompile(`[+]?\d[\d\-:.T/+Z ]*\d|\b\d\b`)
	reIndex  = regexp.MustCompile(`\[\d+\]`)
	reEmail  = regexp.MustCompile(`[^\s@]+@[^\s@]+`)
)

// Scrub removes values from a server's message text (see diagnostics):
// values of the sent resource (except vocabulary: system, use, status,
// url), quoted text, e-mail addresses, numbers and
// dates outside element indexes become "…". It returns at most 200
// characters, control characters removed.
func Scrub(text string, values []string) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text)
	for _, v := range values {
		s = strings.ReplaceAll(s, v, "…")
	}
	s = reQuoted.ReplaceAllString(s, "'…'")
	s = reEmail.ReplaceAllString(s, "…")
	// Keep [0]-style indexes: protect them, scrub numbers, restore.
	idx := reIndex.FindAllString(s, -1)
	s = reIndex.ReplaceAllString(s, "\x00")
	s = reNumber.ReplaceAllString(s, "…")
	for _, i := range idx {
		s = strings.Replace(s, "\x00", i, 1)
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// leafValues returns the string and number values of a JSON document,
// longest first (so a value containing another is scrubbed whole). Codes,
// systems and references are values too; short ones (< 3 characters) are
// left out, they would scrub ordinary words.
func leafValues(doc []byte) []string {
	if len(doc) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return nil
	}
	seen := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				switch k {
				case "resourceType", "system", "use", "status", "url":
					continue // vocabulary, not data
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		case string:
			if len(x) >= 3 {
				seen[x] = true
			}
		case float64:
			seen[fmt.Sprint(x)] = true
		}
	}
	walk(v)
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) || len(out[i]) == len(out[j]) && out[i] < out[j] })
	return out
}
