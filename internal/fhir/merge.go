package fhir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"unicode"
)

// Rule is one element Switchboard owns in a resource type it writes.
type Rule struct {
	// Element is a top-level element; "value[x]" names every value choice.
	Element string
	// Mine picks Switchboard's entries of a repeating element (the others
	// are the EHR's and are kept); nil: the whole element is Switchboard's.
	Mine func(entry map[string]any, system string) bool
	// Doc says what is owned, for people.
	Doc string
}

// Owned lists, per resource type, the elements Switchboard owns. An update
// reads the server's resource and writes only these, and only those whose
// value Switchboard changed since its last write (fhir_links.owned_hashes);
// every other element — identifiers, names, addresses, telecoms, notes,
// extensions the EHR added — stays as the server holds it. meta keeps the
// server's, with Switchboard's tag and profile added. A resource type not
// listed (app-built resources of push_fhir) owns the top-level elements it
// sends, and Switchboard's identifier only.
var Owned = map[string][]Rule{
	"Patient": {
		{Element: "identifier", Mine: ourIdentifier, Doc: "Switchboard's identifier (its system)"},
		{Element: "active"},
		{Element: "name", Mine: officialName, Doc: "the official name"},
		{Element: "telecom", Mine: mobilePhone, Doc: "the mobile phone"},
		{Element: "gender"},
		{Element: "birthDate"},
		{Element: "extension", Mine: extensionURL(ExtDataAbsentReason), Doc: "data-absent-reason"},
	},
	"Observation": {
		{Element: "identifier", Mine: ourIdentifier, Doc: "Switchboard's identifier (its system)"},
		{Element: "status"},
		{Element: "category", Mine: codingSystem(SystemObservationCategory), Doc: "observation-category codes"},
		{Element: "code"},
		{Element: "subject"},
		{Element: "performer", Mine: func(e map[string]any, _ string) bool { return strings.HasPrefix(sval(e["reference"]), "Patient/") },
			Doc: "the patient as performer"},
		{Element: "effective[x]"},
		{Element: "value[x]"},
		{Element: "dataAbsentReason"},
		{Element: "interpretation"},
		{Element: "component"},
		{Element: "device"},
	},
	"Device": {
		{Element: "identifier", Mine: ourIdentifier, Doc: "Switchboard's identifier (its system)"},
		{Element: "status"},
		{Element: "patient"},
		{Element: "type"},
		{Element: "manufacturer"},
		{Element: "modelNumber"},
		{Element: "deviceName"},
	},
	"Communication": {
		{Element: "identifier", Mine: ourIdentifier, Doc: "Switchboard's identifier (its system)"},
		{Element: "status"},
		{Element: "statusReason"},
		{Element: "category"},
		{Element: "medium"},
		{Element: "subject"},
		{Element: "recipient"},
		{Element: "sent"},
		{Element: "received"},
		{Element: "payload"},
	},
	"Consent": {
		{Element: "identifier", Mine: ourIdentifier, Doc: "Switchboard's identifier (its system)"},
		{Element: "status"},
		{Element: "scope"},
		{Element: "category"},
		{Element: "patient"},
		{Element: "dateTime"},
		{Element: "policyRule"},
		{Element: "provision"},
	},
}

func sval(v any) string { s, _ := v.(string); return s }

func ourIdentifier(e map[string]any, system string) bool { return sval(e["system"]) == system }

func officialName(e map[string]any, _ string) bool {
	return sval(e["use"]) == "official" || extensionURL(ExtDataAbsentReason)(e, "")
}

func mobilePhone(e map[string]any, _ string) bool {
	return sval(e["system"]) == "phone" && sval(e["use"]) == "mobile"
}

func extensionURL(url string) func(map[string]any, string) bool {
	return func(e map[string]any, _ string) bool {
		if sval(e["url"]) == url {
			return true
		}
		exts, _ := e["extension"].([]any)
		for _, x := range exts {
			if m, ok := x.(map[string]any); ok && sval(m["url"]) == url {
				return true
			}
		}
		return false
	}
}

func codingSystem(system string) func(map[string]any, string) bool {
	return func(e map[string]any, _ string) bool {
		cs, _ := e["coding"].([]any)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok && sval(m["system"]) == system {
				return true
			}
		}
		return false
	}
}

// rulesFor returns the owned elements of a resource type; for a type not in
// Owned, every top-level element ours carries (identifier keyed by system).
func rulesFor(rt string, ours map[string]any) []Rule {
	if r, ok := Owned[rt]; ok {
		return r
	}
	var rules []Rule
	for k := range ours {
		switch k {
		case "resourceType", "id", "meta":
		case "identifier":
			rules = append(rules, Rule{Element: k, Mine: ourIdentifier})
		default:
			rules = append(rules, Rule{Element: k})
		}
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Element < rules[j].Element })
	return rules
}

// matches reports whether a top-level key belongs to a rule's element.
func (r Rule) matches(key string) bool {
	if prefix, ok := strings.CutSuffix(r.Element, "[x]"); ok {
		rest, ok := strings.CutPrefix(key, prefix)
		return ok && rest != "" && unicode.IsUpper(rune(rest[0]))
	}
	return key == r.Element
}

// project is Switchboard's value of a rule's element in ours.
func (r Rule) project(ours map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range ours {
		if r.matches(k) {
			out[k] = v
		}
	}
	return out
}

func hashOf(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// Merge applies Switchboard's resource (ours) onto the server's (server):
// each owned element whose value differs from what Switchboard last wrote
// (prev: element → hash; nil applies every owned element) replaces the
// server's — for a repeating element only Switchboard's entries (Rule.Mine)
// are replaced, the EHR's stay. Everything not owned is the server's. It
// returns the merged resource and the hashes to store for the next merge.
// system is Switchboard's identifier system.
func Merge(rt string, server, ours map[string]any, prev map[string]string, system string) (map[string]any, map[string]string) {
	merged := clone(server)
	hashes := map[string]string{}
	for _, r := range rulesFor(rt, ours) {
		val := r.project(ours)
		h := hashOf(val)
		hashes[r.Element] = h
		if prev != nil && prev[r.Element] == h {
			continue // unchanged by Switchboard: whatever the server holds stays
		}
		if r.Mine == nil {
			for k := range merged {
				if r.matches(k) {
					delete(merged, k)
				}
			}
			for k, v := range val {
				merged[k] = clone(v)
			}
			continue
		}
		mine, _ := ours[r.Element].([]any)
		theirs, _ := merged[r.Element].([]any)
		out := make([]any, 0, len(mine)+len(theirs))
		for _, e := range mine {
			out = append(out, clone(e))
		}
		for _, e := range theirs {
			if m, ok := e.(map[string]any); ok && r.Mine(m, system) {
				continue
			}
			out = append(out, e)
		}
		if len(out) == 0 {
			delete(merged, r.Element)
		} else {
			merged[r.Element] = out
		}
	}
	mergeMeta(merged, ours)
	if rt, ok := ours["resourceType"]; ok {
		merged["resourceType"] = rt
	}
	return merged, hashes
}

// mergeMeta adds ours' tags and profiles to the server's meta.
func mergeMeta(merged, ours map[string]any) {
	om, _ := ours["meta"].(map[string]any)
	if om == nil {
		return
	}
	sm, _ := merged["meta"].(map[string]any)
	if sm == nil {
		sm = map[string]any{}
	}
	for _, key := range []string{"tag", "profile"} {
		add, _ := om[key].([]any)
		have, _ := sm[key].([]any)
		for _, a := range add {
			found := false
			for _, h := range have {
				if reflect.DeepEqual(a, h) || sameCoding(a, h) {
					found = true
					break
				}
			}
			if !found {
				have = append(have, clone(a))
			}
		}
		if len(have) > 0 {
			sm[key] = have
		}
	}
	merged["meta"] = sm
}

func sameCoding(a, b any) bool {
	am, ok1 := a.(map[string]any)
	bm, ok2 := b.(map[string]any)
	return ok1 && ok2 && sval(am["system"]) == sval(bm["system"]) && sval(am["code"]) == sval(bm["code"]) && sval(am["code"]) != ""
}

// clone deep-copies decoded JSON.
func clone[T any](v T) T {
	b, _ := json.Marshal(v)
	var out T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return out
}

// decodeResource decodes a resource keeping numbers exact.
func decodeResource(b []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// sameContent reports whether two resources hold the same content, meta's
// server-kept parts (versionId, lastUpdated) aside.
func sameContent(a, b map[string]any) bool {
	strip := func(m map[string]any) map[string]any {
		c := clone(m)
		if meta, ok := c["meta"].(map[string]any); ok {
			delete(meta, "versionId")
			delete(meta, "lastUpdated")
			if len(meta) == 0 {
				delete(c, "meta")
			}
		}
		return c
	}
	x, _ := json.Marshal(strip(a))
	y, _ := json.Marshal(strip(b))
	return bytes.Equal(x, y)
}

// JSONPatch is the RFC 6902 patch turning server into merged, top-level
// element by element, after a test that the server still holds version.
func JSONPatch(server, merged map[string]any, version string) []map[string]any {
	ops := []map[string]any{{"op": "test", "path": "/meta/versionId", "value": version}}
	keys := map[string]bool{}
	for k := range server {
		keys[k] = true
	}
	for k := range merged {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "id" || k == "resourceType" {
			continue
		}
		path := "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
		sv, inServer := server[k]
		mv, inMerged := merged[k]
		if k == "meta" {
			// Only tags and profiles change; the server keeps the rest.
			sm, _ := sv.(map[string]any)
			mm, _ := mv.(map[string]any)
			for _, mk := range []string{"tag", "profile"} {
				a, inA := sm[mk]
				b, inB := mm[mk]
				if inB && (!inA || !reflect.DeepEqual(clone(a), clone(b))) {
					op := "replace"
					if !inA {
						op = "add"
					}
					if sm == nil {
						ops = append(ops, map[string]any{"op": "add", "path": "/meta", "value": map[string]any{}})
						sm = map[string]any{}
					}
					ops = append(ops, map[string]any{"op": op, "path": "/meta/" + mk, "value": b})
				}
			}
			continue
		}
		switch {
		case inServer && !inMerged:
			ops = append(ops, map[string]any{"op": "remove", "path": path})
		case !inServer && inMerged:
			ops = append(ops, map[string]any{"op": "add", "path": path, "value": mv})
		case inServer && inMerged:
			a, _ := json.Marshal(sv)
			b, _ := json.Marshal(mv)
			if !bytes.Equal(a, b) {
				ops = append(ops, map[string]any{"op": "replace", "path": path, "value": mv})
			}
		}
	}
	return ops
}
