package oauth

import (
	"context"
	"errors"
	"strings"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/token"
	"github.com/open-egs/egs/services/auth/internal/signing"
)

// AccessClaims are the claims of an OAuth2 access token: those of every EGS
// access token (role, ws; iss "egs", so the edges verify it like an API
// key's token) plus the client, the granted scopes and, for users, their
// roles per workspace.
type AccessClaims struct {
	token.Claims
	ClientID   string            `json:"client_id,omitempty"`
	Scope      string            `json:"scope,omitempty"`
	Workspaces map[string]string `json:"wss,omitempty"`
}

// strategy issues access tokens as EdDSA JWTs signed by the keyring and
// keeps fosite's HMAC strategy for authorization codes and refresh tokens.
type strategy struct {
	*oauth2.HMACSHAStrategy
	keys *signing.Keyring
	now  func() time.Time
}

var _ oauth2.CoreStrategy = (*strategy)(nil)

// AccessTokenSignature is the JWT's signature, the key of its state in Redis.
func (s *strategy) AccessTokenSignature(_ context.Context, raw string) string {
	i := strings.LastIndexByte(raw, '.')
	if i < 0 || strings.Count(raw, ".") != 2 {
		return ""
	}
	return raw[i+1:]
}

// GenerateAccessToken signs the access token of req's session.
func (s *strategy) GenerateAccessToken(_ context.Context, req fosite.Requester) (string, string, error) {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return "", "", errors.New("oauth: foreign session type")
	}
	now := s.now().UTC().Truncate(time.Second)
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = now.Add(token.TTL)
	}
	sess.JTI = bus.NewID()
	c := AccessClaims{
		Claims: token.Claims{Role: sess.Role, Workspace: sess.Workspace, RegisteredClaims: gjwt.RegisteredClaims{
			Issuer: token.Issuer, Subject: sess.GetSubject(), IssuedAt: gjwt.NewNumericDate(now),
			ExpiresAt: gjwt.NewNumericDate(exp), ID: sess.JTI,
		}},
		ClientID:   req.GetClient().GetID(),
		Scope:      strings.Join(req.GetGrantedScopes(), " "),
		Workspaces: sess.Workspaces,
	}
	signer := s.keys.Current()
	t := gjwt.NewWithClaims(gjwt.SigningMethodEdDSA, c)
	t.Header["kid"] = signer.KeyID()
	raw, err := t.SignedString(signer.Private())
	if err != nil {
		return "", "", err
	}
	return raw, s.AccessTokenSignature(context.Background(), raw), nil
}

// ValidateAccessToken checks the JWT's signature against the keyring and its expiry.
func (s *strategy) ValidateAccessToken(_ context.Context, _ fosite.Requester, raw string) error {
	var ks token.KeySet
	ks.SetJWKS(s.keys.JWKS())
	_, err := ks.Verify(raw, s.now())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gjwt.ErrTokenExpired):
		return fosite.ErrTokenExpired.WithHint("Access token expired.")
	default:
		return fosite.ErrTokenSignatureMismatch.WithHint("Access token is not valid.")
	}
}
