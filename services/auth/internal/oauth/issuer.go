package oauth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
	fjwt "github.com/ory/fosite/token/jwt"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/signing"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// Headers by which the edge tells the issuer who the portal user of an
// authorization request is. The issuer believes them only with the shared
// edge secret (an edge strips both from what clients send).
const (
	HeaderUser       = "X-Egs-Portal-User"
	HeaderEdgeSecret = "X-Egs-Edge-Secret"
)

// Lifetimes.
const (
	AccessTokenTTL  = 15 * time.Minute
	RefreshTokenTTL = 30 * 24 * time.Hour
	CodeTTL         = 10 * time.Minute
	IDTokenTTL      = time.Hour
	// MaxTokenTTL is how long a retired signing key stays in the JWKS.
	MaxTokenTTL = IDTokenTTL
)

// Config configures the issuer.
type Config struct {
	// IssuerURL is the public base URL, e.g. https://egs.example.com (with
	// the edge's path prefix when it has one).
	IssuerURL string
	// HMACSecret signs authorization codes and refresh tokens: at least 32
	// bytes, the same on every auth replica and across restarts.
	HMACSecret []byte
	// EdgeSecret authenticates the edge's user headers on /oauth2/auth.
	EdgeSecret string
}

// Issuer is the OAuth2/OIDC issuer.
type Issuer struct {
	cfg      Config
	provider fosite.OAuth2Provider
	keys     *signing.Keyring
	users    *users.Manager
	clients  ClientStore
	audit    users.Events
	log      *slog.Logger
	now      func() time.Time
}

// NewIssuer builds the issuer on the store (Redis), the keyring, the users
// (for the claims of a logged-in user) and the registered clients.
func NewIssuer(cfg Config, store *Store, keys *signing.Keyring, um *users.Manager, clients ClientStore,
	audit users.Events, log *slog.Logger, now func() time.Time) (*Issuer, error) {
	if len(cfg.HMACSecret) < 32 {
		return nil, errors.New("oauth: HMAC secret must be at least 32 bytes")
	}
	if cfg.IssuerURL == "" {
		return nil, errors.New("oauth: issuer URL is required")
	}
	cfg.IssuerURL = strings.TrimSuffix(cfg.IssuerURL, "/")
	if now == nil {
		now = time.Now
	}
	fc := &fosite.Config{
		AccessTokenLifespan:            AccessTokenTTL,
		RefreshTokenLifespan:           RefreshTokenTTL,
		AuthorizeCodeLifespan:          CodeTTL,
		IDTokenLifespan:                IDTokenTTL,
		IDTokenIssuer:                  cfg.IssuerURL,
		AccessTokenIssuer:              cfg.IssuerURL,
		TokenURL:                       cfg.IssuerURL + "/oauth2/token",
		GlobalSecret:                   cfg.HMACSecret,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		ClientSecretsHasher:            SHA256Hasher{},
		SendDebugMessagesToClients:     false,
		MinParameterEntropy:            fosite.MinParameterEntropy,
		RefreshTokenScopes:             []string{ScopeOfflineAccess, ScopeOffline},
	}
	st := &strategy{HMACSHAStrategy: oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc), keys: keys, now: now}
	idSigner := &fjwt.DefaultSigner{GetPrivateKey: func(context.Context) (any, error) {
		cur := keys.Current()
		return &jose.JSONWebKey{Key: cur.Private(), KeyID: cur.KeyID(), Algorithm: string(jose.EdDSA), Use: "sig"}, nil
	}}
	common := &compose.CommonStrategy{CoreStrategy: st,
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(idSigner.GetPrivateKey, fc), Signer: idSigner}
	provider := compose.Compose(fc, store, common,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
	)
	return &Issuer{cfg: cfg, provider: provider, keys: keys, users: um, clients: clients, audit: audit, log: log,
		now: now}, nil
}

// Handler serves /.well-known/openid-configuration, /.well-known/jwks.json
// and /oauth2/{auth,token,introspect,revoke}.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.discovery)
	mux.HandleFunc("GET /.well-known/jwks.json", i.jwks)
	mux.HandleFunc("/oauth2/auth", i.authorize)
	mux.HandleFunc("POST /oauth2/token", i.tokenEndpoint)
	mux.HandleFunc("POST /oauth2/introspect", i.introspect)
	mux.HandleFunc("POST /oauth2/revoke", i.revoke)
	return mux
}

// Discovery is the OpenID Provider metadata.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
}

func (i *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	u := i.cfg.IssuerURL
	writeJSON(w, Discovery{
		Issuer: u, AuthorizationEndpoint: u + "/oauth2/auth", TokenEndpoint: u + "/oauth2/token",
		IntrospectionEndpoint: u + "/oauth2/introspect", RevocationEndpoint: u + "/oauth2/revoke",
		JWKSURI: u + "/.well-known/jwks.json", ResponseTypesSupported: []string{"code"},
		GrantTypesSupported:               []string{GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"EdDSA"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "none"},
		ScopesSupported:                   knownScopes,
		ClaimsSupported:                   []string{"sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "email", "wss", "admin"},
	})
}

func (i *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, i.keys.JWKS())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// portalUser returns the username the edge vouches for, or "".
func (i *Issuer) portalUser(r *http.Request) string {
	sec := r.Header.Get(HeaderEdgeSecret)
	if i.cfg.EdgeSecret == "" || subtle.ConstantTimeCompare([]byte(sec), []byte(i.cfg.EdgeSecret)) != 1 {
		return ""
	}
	return r.Header.Get(HeaderUser)
}

// authorize is the authorization endpoint: the user is the portal session's
// (vouched for by the edge); consent is implied, the client being
// registered by an admin; the scopes granted are those asked that the client
// may have.
func (i *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := i.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		i.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	name := i.portalUser(r)
	if name == "" {
		i.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired.WithHint("Log in to the portal first."))
		return
	}
	u, err := i.users.Get(ctx, name)
	if err != nil {
		i.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("Unknown user."))
		return
	}
	for _, s := range ar.GetRequestedScopes() {
		if slices.Contains(ar.GetClient().GetScopes(), s) {
			ar.GrantScope(s)
		}
	}
	sess := userSession(u, i.cfg.IssuerURL, i.now())
	resp, err := i.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		i.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	i.publish(ctx, events.AuthFamilyOAuth, events.UserID(u.Username), events.AuthIssued, events.AuthAudit{
		User: u.Username, Target: ar.GetClient().GetID(), Method: "authorization_code",
		Detail: "scope=" + strings.Join(ar.GetGrantedScopes(), " ")})
	i.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// userSession is the session of a user's grant.
func userSession(u rpc.User, issuer string, now time.Time) *Session {
	sub := rpc.UserSubjectPrefix + u.Username
	sess := NewSession()
	sess.Subject, sess.Username = sub, u.Username
	sess.Role = "user"
	if u.Admin {
		sess.Role = "admin"
	}
	sess.Workspaces = map[string]string{}
	for _, w := range u.Workspaces {
		sess.Workspaces[w.Name] = w.Role
	}
	sess.Claims = &fjwt.IDTokenClaims{Subject: sub, Issuer: issuer, AuthTime: now.UTC(), RequestedAt: now.UTC(),
		Extra: map[string]any{"preferred_username": u.Username, "email": u.Email, "admin": u.Admin, "wss": sess.Workspaces}}
	return sess
}

// tokenEndpoint issues tokens: for client_credentials, the client's role
// and workspace; for authorization_code and refresh_token, the stored grant.
func (i *Issuer) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := NewSession()
	ar, err := i.provider.NewAccessRequest(ctx, r, sess)
	if err != nil {
		if errors.Is(err, fosite.ErrInactiveToken) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			i.publish(ctx, events.AuthFamilyOAuth, "grant", events.AuthReused, events.AuthAudit{
				Target: clientOf(ar), Reason: "a used refresh token or code was presented again: its grant is revoked"})
		}
		i.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne(GrantClientCredentials) {
		c, err := i.clients.Get(ctx, ar.GetClient().GetID())
		if err != nil {
			i.provider.WriteAccessError(ctx, w, ar, fosite.ErrInvalidClient)
			return
		}
		sess.Subject, sess.Role, sess.Workspace = c.ID, c.Role, c.Workspace
		requested := ar.GetRequestedScopes()
		if len(requested) == 0 {
			requested = fosite.Arguments{ScopeEGS}
		}
		for _, s := range requested {
			if slices.Contains(c.Scopes, s) {
				ar.GrantScope(s)
			}
		}
	}
	resp, err := i.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		i.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	i.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func clientOf(ar fosite.AccessRequester) string {
	if ar == nil || ar.GetClient() == nil {
		return ""
	}
	return ar.GetClient().GetID()
}

// introspect is RFC 7662: active for a live access or refresh token.
func (i *Issuer) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ir, err := i.provider.NewIntrospectionRequest(ctx, r, NewSession())
	if err != nil {
		i.provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	i.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// revoke is RFC 7009: a refresh token revokes its whole grant, an access
// token itself; either way the edges learn the revoked access tokens.
func (i *Issuer) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := i.provider.NewRevocationRequest(ctx, r)
	if err == nil {
		i.publish(ctx, events.AuthFamilyOAuth, "grant", events.AuthRevoked, events.AuthAudit{Reason: "RFC 7009 revocation",
			Target: r.PostFormValue("client_id")})
	}
	i.provider.WriteRevocationResponse(ctx, w, err)
}

func (i *Issuer) publish(ctx context.Context, family, id, ev string, a events.AuthAudit) {
	if i.audit == nil {
		return
	}
	a.Action = family + "." + ev
	a.At = i.now().UTC()
	if err := i.audit.Publish(ctx, family, id, ev, "", a); err != nil {
		i.log.WarnContext(ctx, "audit oauth2 decision", logkey.Err, err)
	}
}
