package api

import (
	"fmt"
	"net/http"
	"net/url"
)

// Twilio status callbacks.
const (
	providerTwilio           = "twilio"
	routeTwilioStatus        = "/webhooks/twilio/status"
	routeTwilioInbound       = "/webhooks/twilio/inbound"
	eventTypeMessageStatus   = "message.status"
	eventTypeMessageInbound  = "message.inbound"
	twilioSignatureHeader    = "X-Twilio-Signature"
	twilioFieldMessageSID    = "MessageSid"
	twilioFieldMessageStatus = "MessageStatus"
)

// twilioStatusRoute verifies a Twilio status callback with twilio-go's own
// validator and keys it by MessageSid:MessageStatus.
func (s *Server) twilioStatusRoute() webhookRoute {
	return webhookRoute{
		provider: providerTwilio,
		route:    routeTwilioStatus,
		parse: func(r *http.Request, body []byte) (inboundEvent, error) {
			form, err := s.verifyTwilio(r, body)
			if err != nil {
				return inboundEvent{}, err
			}
			sid, status := form.Get(twilioFieldMessageSID), form.Get(twilioFieldMessageStatus)
			if sid == "" {
				return inboundEvent{}, fmt.Errorf("%w: missing %s", errMalformed, twilioFieldMessageSID)
			}
			if status == "" {
				return inboundEvent{}, fmt.Errorf("%w: missing %s", errMalformed, twilioFieldMessageStatus)
			}
			return inboundEvent{ProviderEventID: sid + ":" + status, EventType: eventTypeMessageStatus}, nil
		},
	}
}

// verifyTwilio checks X-Twilio-Signature over the public URL of the request
// (PUBLIC_BASE_URL + path and query as received) and the form parameters of
// body, first value per name, and returns the parsed form.
func (s *Server) verifyTwilio(r *http.Request, body []byte) (url.Values, error) {
	if s.cfg.TwilioAuthToken == "" {
		return nil, fmt.Errorf("%w: twilio auth token", errUnconfigured)
	}
	sig := r.Header.Get(twilioSignatureHeader)
	if sig == "" {
		return nil, fmt.Errorf("%w: missing %s", errBadSignature, twilioSignatureHeader)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: error parsing form body: %w", errMalformed, err)
	}
	params := make(map[string]string, len(form))
	for name, values := range form {
		params[name] = values[0]
	}
	if !s.twilioValidator.Validate(s.publicURL(r), params, sig) {
		return nil, fmt.Errorf("%w: %s does not match", errBadSignature, twilioSignatureHeader)
	}
	return form, nil
}

// twilioInboundRoute verifies an inbound SMS webhook and keys it by the
// inbound message's SID. It answers an empty TwiML document: replies
// (HELP, auto-replies) go out through the outbox, never inline.
func (s *Server) twilioInboundRoute() webhookRoute {
	return webhookRoute{
		provider: providerTwilio,
		route:    routeTwilioInbound,
		parse: func(r *http.Request, body []byte) (inboundEvent, error) {
			form, err := s.verifyTwilio(r, body)
			if err != nil {
				return inboundEvent{}, err
			}
			sid := form.Get(twilioFieldMessageSID)
			if sid == "" {
				return inboundEvent{}, fmt.Errorf("%w: missing %s", errMalformed, twilioFieldMessageSID)
			}
			if form.Get("From") == "" {
				return inboundEvent{}, fmt.Errorf("%w: missing From", errMalformed)
			}
			return inboundEvent{ProviderEventID: sid, EventType: eventTypeMessageInbound}, nil
		},
		ok: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Response></Response>`))
		},
	}
}
