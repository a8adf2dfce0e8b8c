// Package googlehealth is the adapter for the Google Health API v4 (the
// successor of the Fitbit Web API) and Google's OAuth 2.0 endpoints.
//
// # OAuth
//
// OAuth builds the consent URL (authorization code with PKCE S256, offline
// access, prompt=consent), exchanges codes, refreshes and revokes tokens. A
// dead refresh token is an *OAuthError matching ErrInvalidGrant: the caller
// asks the patient to consent again and never retries it.
//
// # API
//
// Client reads data points (following pages) and daily roll-ups, and the
// user's identity and settings. Every error from Google is an *Error with the
// HTTP status, the status name (RESOURCE_EXHAUSTED …), the ErrorInfo reason
// and any Retry-After; its text never holds a response body. A transport
// error (refused, timed out) names the request without its query or the
// user's id. Class tells what a worker does with it.
//
// # Webhooks
//
// Verifier checks a notification: the Authorization header against the
// configured secret(s), then the Tink ECDSA P-256 signature over the raw
// body against a public keyset file (reloaded when an unknown key id shows
// up). ParseNotification reads the payload (object or array).
//
// Every URL can be overridden (GOOGLE_HEALTH_API_BASE_URL, GOOGLE_OAUTH_*):
// that is how the sandbox (internal/sandbox/googlehealth) and the tests point
// this client at local servers.
package googlehealth
