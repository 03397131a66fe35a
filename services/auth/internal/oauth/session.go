// Package oauth is the auth service's OAuth2 / OpenID Connect issuer, built
// on ory/fosite: discovery, JWKS (with the keyring's rotation), the
// authorization_code grant with PKCE (S256 only), client_credentials,
// refresh_token with rotation and reuse detection, introspection (RFC 7662)
// and revocation (RFC 7009). Access tokens are EdDSA JWTs that the edges
// verify locally, with workspace and role claims; codes, refresh tokens and
// the state of every token live in Redis with TTLs. Clients are registered
// by admins (Clients) and their secrets kept as SHA-256.
package oauth

import (
	"encoding/json"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is the fosite session of one grant: the OIDC session (subject,
// ID token claims, expiries) and what the access token says the bearer may
// do.
type Session struct {
	*openid.DefaultSession `json:"oidc"`
	Role                   string            `json:"role,omitempty"`
	Workspace              string            `json:"ws,omitempty"`
	Workspaces             map[string]string `json:"wss,omitempty"`
	// JTI is the id of the last access token issued in this session (set
	// when it is generated), so a revocation can name it to the edges.
	JTI string `json:"jti,omitempty"`
}

// NewSession returns an empty session.
func NewSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// Clone copies the session deeply.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return NewSession()
	}
	n := NewSession()
	_ = json.Unmarshal(b, n)
	return n
}
