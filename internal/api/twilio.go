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
	eventTypeMessageStatus   = "message.status"
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
