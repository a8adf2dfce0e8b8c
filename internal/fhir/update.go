package fhir

import (
	"context"
	"encoding/json"

	"github.com/switchboard-health/switchboard/db"
)

// update applies Switchboard's resource (body) to the linked resource
// without losing what the server holds: read, Merge the owned elements,
// write version-aware — PUT with If-Match, or JSON Patch testing the
// version where the endpoint's write plan says the server supports patch.
// A 409/412 (someone changed it in between) re-reads and re-merges, at
// most FHIR_MAX_CONFLICT_RETRIES times, then a *ConflictError. current is
// the server's resource when the caller already holds it (a conditional
// create that found one), else nil.
func (w *PushWorker) update(ctx context.Context, ep *Endpoint, link db.FHIRLink, rt string, body []byte, current *Response) (db.FHIRLink, error) {
	ours, err := decodeResource(body)
	if err != nil {
		return link, err
	}
	var prev map[string]string
	if len(link.OwnedHashes) > 0 {
		_ = json.Unmarshal(link.OwnedHashes, &prev)
	}
	usePatch := ep.Plan().Update == UpdatePatch
	var lastErr error
	for try := 0; ; try++ {
		if try > w.deps.Config.MaxConflictRetries {
			return link, &ConflictError{Merges: try, Err: lastErr}
		}
		cur := current
		current = nil
		if cur == nil || len(cur.Body) == 0 {
			if err := ep.call(ctx, func(ctx context.Context) error {
				var err error
				cur, err = ep.Client.Read(ctx, rt, link.ResourceID)
				return err
			}); err != nil {
				return link, err
			}
		}
		server, err := decodeResource(cur.Body)
		if err != nil {
			return link, &Error{Op: "read " + rt, Status: cur.Status, Issues: []string{"body is not a resource"}}
		}
		version := cur.VersionID()
		merged, hashes := Merge(rt, server, ours, prev, ep.opts.IdentifierSystem)
		hb, _ := json.Marshal(hashes)
		if sameContent(server, merged) {
			// The server already holds everything Switchboard owns.
			link.VersionID, link.ContentHash, link.OwnedHashes = ptr(version), ContentHash(body), hb
			return link, w.saveLink(ctx, link)
		}
		var resp *Response
		err = ep.call(ctx, func(ctx context.Context) error {
			var err error
			if usePatch {
				ops, _ := json.Marshal(JSONPatch(server, merged, version))
				resp, err = ep.Client.Patch(ctx, rt, link.ResourceID, version, ops)
			} else {
				mb, _ := json.Marshal(merged)
				resp, err = ep.Client.Update(ctx, rt, link.ResourceID, version, mb)
			}
			return err
		})
		if err == nil {
			link.VersionID, link.ContentHash, link.OwnedHashes = ptr(resp.VersionID()), ContentHash(body), hb
			return link, w.saveLink(ctx, link)
		}
		if Classify(err, 1) != ClassStale {
			return link, err
		}
		lastErr = err
	}
}

// recordErr names the record a push error is about.
func recordErr(err error, rt, entity string, id int64, resourceID string) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*RecordError); ok {
		return err
	}
	return &RecordError{ResourceType: rt, Entity: entity, EntityID: id, ResourceID: resourceID, Err: err}
}

// ownedHashes are the hashes Merge stores for a resource created whole.
func ownedHashes(rt string, body []byte, system string) []byte {
	ours, err := decodeResource(body)
	if err != nil {
		return nil
	}
	_, h := Merge(rt, map[string]any{}, ours, nil, system)
	b, _ := json.Marshal(h)
	return b
}
