package fhir

import (
	"fmt"
	"strings"
	"unicode"
)

// bindings walks a resource along its R4 element definitions and checks
// every element with a required binding (r4spec): a code must be in the
// value set, a Coding must be, a CodeableConcept must carry at least one
// coding that is. def is the element definition path of obj (a resource
// type, a data type or a backbone element path), at its instance path.
func (c *checker) bindings(def, at string, obj map[string]any) {
	for _, name := range c.spec.RequiredChildren(def) {
		if !hasElement(obj, name) {
			c.add(at+"."+name, "schema: required (minimum cardinality 1)")
		}
	}
	for k, v := range obj {
		if k == "resourceType" || strings.HasPrefix(k, "_") {
			continue
		}
		path, typ, ok := c.element(def, k)
		if !ok {
			continue // unknown elements: the schema reports them
		}
		items, isList := v.([]any)
		if !isList {
			items = []any{v}
		}
		for i, item := range items {
			ip := at + "." + k
			if isList {
				ip = fmt.Sprintf("%s[%d]", ip, i)
			}
			if url, ok := c.spec.Bindings[path]; ok {
				c.binding(ip, typ, url, item)
			}
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			switch {
			case typ == "Resource":
				if rt, _ := m["resourceType"].(string); c.spec.IsResource(rt) {
					c.bindings(rt, ip, m)
				}
			case typ == "" || typ == "BackboneElement" || typ == "Element":
				c.bindings(path, ip, m)
			default:
				c.bindings(typ, ip, m)
			}
		}
	}
}

// element finds the definition of key k under def: its path (choice
// elements as value[x]) and its type when it has one.
func (c *checker) element(def, k string) (string, string, bool) {
	path := def + "." + k
	types, ok := c.spec.Elements[path]
	if !ok {
		for i := len(k) - 1; i > 0; i-- {
			if !unicode.IsUpper(rune(k[i])) {
				continue
			}
			if _, ok := c.spec.Elements[def+"."+k[:i]+"[x]"]; ok {
				t := k[i:]
				if unicode.IsUpper(rune(t[0])) && !(len(t) > 1 && unicode.IsUpper(rune(t[1]))) {
					// valueString → string; valueCodeableConcept stays;
					// complex types keep their capital.
					if _, complex := c.spec.Elements[t+".id"]; !complex {
						t = strings.ToLower(t[:1]) + t[1:]
					}
				}
				return def + "." + k[:i] + "[x]", t, true
			}
		}
		return "", "", false
	}
	if ref, ok := c.spec.ContentRefs[path]; ok {
		return ref, "", true
	}
	if len(types) == 1 {
		return path, types[0], true
	}
	return path, "", true
}

func (c *checker) binding(at, typ, url string, v any) {
	name := url[strings.LastIndex(url, "/")+1:]
	switch typ {
	case "code":
		if s, ok := v.(string); ok && !c.spec.InValueSet(url, "", s) {
			c.add(at, "binding: not in the required value set %s", name)
		}
	case "Coding":
		m, _ := v.(map[string]any)
		if code := str(m, "code"); code != "" && !c.spec.InValueSet(url, str(m, "system"), code) {
			c.add(at, "binding: not in the required value set %s", name)
		}
	case "CodeableConcept":
		m, _ := v.(map[string]any)
		for _, cd := range list(m["coding"]) {
			cm, _ := cd.(map[string]any)
			if c.spec.InValueSet(url, str(cm, "system"), str(cm, "code")) {
				return
			}
		}
		c.add(at, "binding: no coding from the required value set %s", name)
	}
}

// hasElement reports whether obj holds element name (a primitive may be
// present as its _name extension only; value[x] as any valueType).
func hasElement(obj map[string]any, name string) bool {
	if base, ok := strings.CutSuffix(name, "[x]"); ok {
		for k := range obj {
			if strings.HasPrefix(k, base) && len(k) > len(base) && unicode.IsUpper(rune(k[len(base)])) {
				return true
			}
		}
		return false
	}
	_, a := obj[name]
	_, b := obj["_"+name]
	return a || b
}
