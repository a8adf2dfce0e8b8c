package twiliosandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// SendInbound posts a signed inbound-SMS webhook to webhookURL, as Twilio
// does when a patient texts one of our numbers, and returns the inbound
// message's SID. It returns an error when the post fails or is not answered
// 2xx.
func (s *Server) SendInbound(ctx context.Context, webhookURL, from, to, body string) (string, error) {
	sid := newSID("SM")
	form := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid}, "AccountSid": {s.cfg.AccountSID},
		"From": {from}, "To": {to}, "Body": {body}, "NumMedia": {"0"}, "NumSegments": {"1"},
		"SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", Sign(s.cfg.AuthToken, webhookURL, form))
	resp, err := s.callback.Do(req)
	if err != nil {
		return "", fmt.Errorf("error posting inbound webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("inbound webhook answered %d", resp.StatusCode)
	}
	return sid, nil
}
