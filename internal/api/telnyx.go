package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-health/switchboard/internal/telnyx"
)

// Telnyx messaging webhooks: one route for every event, and the status
// route per-message webhook URLs carry (?m=<message id>).
const (
	providerTelnyx    = "telnyx"
	routeTelnyx       = "/webhooks/telnyx"
	routeTelnyxStatus = "/webhooks/telnyx/status"
)

// telnyxRoute verifies Telnyx's Ed25519 signature over timestamp|body with a
// five-minute freshness window (replays outside it are rejected) and keys
// the event by data.id.
func (s *Server) telnyxRoute(route string) webhookRoute {
	return webhookRoute{
		provider: providerTelnyx,
		route:    route,
		parse: func(r *http.Request, body []byte) (inboundEvent, error) {
			if len(s.cfg.TelnyxPublicKey) == 0 {
				return inboundEvent{}, fmt.Errorf("%w: telnyx public key", errUnconfigured)
			}
			err := telnyx.Verify(s.cfg.TelnyxPublicKey, body,
				r.Header.Get(telnyx.HeaderSignature), r.Header.Get(telnyx.HeaderTimestamp), time.Now())
			if err != nil {
				return inboundEvent{}, fmt.Errorf("%w: %w", errBadSignature, err)
			}
			ev, err := telnyx.ParseEvent(body)
			if err != nil {
				return inboundEvent{}, fmt.Errorf("%w: %w", errMalformed, err)
			}
			if ev.ID == "" || ev.Type == "" {
				return inboundEvent{}, fmt.Errorf("%w: %w", errMalformed, errors.New("event without data.id or data.event_type"))
			}
			return inboundEvent{ProviderEventID: ev.ID, EventType: ev.Type}, nil
		},
	}
}
