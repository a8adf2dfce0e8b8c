package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// resolveReferences replaces every conditional reference (Patient?identifier=…)
// in an app-built resource with the literal reference of the one resource
// it matches on the endpoint, found by a search there. A conditional
// reference that matches no resource or several, or whose type the endpoint
// cannot search, is a *ValidationError naming the element: the resource is
// never sent with it. Literal and contained references are left alone.
func (w *PushWorker) resolveReferences(ctx context.Context, ep *Endpoint, body []byte) ([]byte, error) {
	var r map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, &ValidationError{ResourceType: "resource", Issues: []string{"resource: schema: not a JSON object"}}
	}
	rt, _ := r["resourceType"].(string)
	var issues []string
	changed := false
	var walk func(path string, v any) error
	walk = func(path string, v any) error {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				s, ok := e.(string)
				if k != "reference" || !ok || !reConditional.MatchString(s) {
					if err := walk(path+"."+k, e); err != nil {
						return err
					}
					continue
				}
				ref, why, err := w.resolveOne(ctx, ep, s)
				if err != nil {
					return err
				}
				if why != "" {
					issues = append(issues, path+"."+k+": reference: conditional reference "+why)
					continue
				}
				t[k], changed = ref, true
			}
		case []any:
			for i, e := range t {
				if err := walk(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(rt, r); err != nil {
		return nil, err
	}
	if len(issues) > 0 {
		return nil, &ValidationError{ResourceType: rt, Issues: issues}
	}
	if !changed {
		return body, nil
	}
	return json.Marshal(r)
}

// resolveOne searches the endpoint for a conditional reference: the
// literal reference when exactly one resource matches, else why not.
func (w *PushWorker) resolveOne(ctx context.Context, ep *Endpoint, ref string) (string, string, error) {
	typ, query, _ := strings.Cut(ref, "?")
	q, err := url.ParseQuery(query)
	if err != nil || len(q) == 0 {
		return "", "has no valid search", nil
	}
	caps, err := ep.capabilities(ctx, w.deps)
	if err != nil {
		return "", "", err
	}
	if caps.Require("search-type", typ) != nil {
		return "", "to a type the endpoint cannot search", nil
	}
	q.Set("_count", "2")
	var ids []string
	err = ep.call(ctx, func(ctx context.Context) error {
		ids = nil
		_, err := ep.Client.Search(ctx, typ, q, 1, func(page []byte) error {
			var b struct {
				Entry []struct {
					Resource struct {
						ResourceType string `json:"resourceType"`
						ID           string `json:"id"`
					} `json:"resource"`
					Search struct {
						Mode string `json:"mode"`
					} `json:"search"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(page, &b); err != nil {
				return &Error{Op: "search " + typ, Status: 200, Issues: []string{"page is not a Bundle"}}
			}
			for _, e := range b.Entry {
				if e.Resource.ResourceType == typ && e.Resource.ID != "" && (e.Search.Mode == "" || e.Search.Mode == "match") {
					ids = append(ids, e.Resource.ID)
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		return "", "", err
	}
	switch len(ids) {
	case 0:
		return "", "matches no resource on the endpoint", nil
	case 1:
		return typ + "/" + ids[0], "", nil
	default:
		return "", "matches several resources on the endpoint", nil
	}
}
