// Package googlehealthsandbox is a local fake of Google's OAuth 2.0
// endpoints and the Google Health API v4 that speaks their protocol, so the
// real adapter (internal/googlehealth) can be pointed at it by URL
// (GOOGLE_OAUTH_AUTH_URL=<sandbox>/o/oauth2/v2/auth,
// GOOGLE_OAUTH_TOKEN_URL=<sandbox>/token, GOOGLE_OAUTH_REVOKE_URL=<sandbox>/revoke,
// GOOGLE_HEALTH_API_BASE_URL=<sandbox>/v4).
//
// It implements: the consent screen (auto-approved for the configured user,
// authorization code with PKCE S256 checked at the token endpoint), the
// token endpoint (authorization_code and refresh_token grants, invalid_grant
// for revoked grants or a wrong verifier), revoke, users/me/identity and
// settings, dataPoints list with AIP-160 time filters and paging (newest
// first), and :dailyRollUp for steps (reconciled: overlapping phone and
// watch minutes are counted once). It signs notifications like Google (Tink
// ECDSA P-256: 0x01 ‖ key id ‖ DER) with a key generated at start and writes
// the public keyset file the api verifies with.
//
// Faults: Fail injects HTTP errors (5xx, 429 with Retry-After, 401) on a
// path prefix for the next n calls; RevokeUser kills a user's grant (refresh
// answers invalid_grant); ExpireAccessTokens makes every access token 401.
package googlehealthsandbox
