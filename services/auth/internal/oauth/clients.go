package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// Grant types and scopes.
const (
	GrantClientCredentials = "client_credentials"
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"

	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeOfflineAccess = "offline_access"
	ScopeOffline       = "offline"
	ScopeEGS           = "egs" // the EGS API

	ClientIDPrefix     = "egsc-"
	ClientSecretPrefix = "egss_"
	MaxClientNameLen   = 128
	MaxRedirectURIs    = 16
)

// Client errors.
var (
	ErrClientNotFound = errors.New("oauth2 client not found")
	ErrClientExists   = errors.New("oauth2 client already exists")
)

var knownScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOfflineAccess, ScopeOffline, ScopeEGS}

// Client is a registered OAuth2 client; only the SHA-256 of its secret is kept.
type Client struct {
	rpc.OAuthClient
	SecretHash string `json:"secretHash,omitempty"`
}

// ClientStore keeps clients (owner: auth; the EGS_OAUTH_CLIENTS bucket).
type ClientStore interface {
	Create(ctx context.Context, c Client) error
	Get(ctx context.Context, id string) (Client, error) // ErrClientNotFound
	List(ctx context.Context) ([]Client, error)
	Delete(ctx context.Context, id string) error // ErrClientNotFound
}

// Clients runs the client use cases.
type Clients struct {
	store      ClientStore
	workspaces users.Workspaces
	events     users.Events
	now        func() time.Time
}

// NewClients returns the client use cases.
func NewClients(store ClientStore, ws users.Workspaces, ev users.Events, now func() time.Time) *Clients {
	if now == nil {
		now = time.Now
	}
	return &Clients{store: store, workspaces: ws, events: ev, now: now}
}

func invalid(format string, args ...any) error {
	return &rpc.Error{Code: rpc.Invalid, Message: fmt.Sprintf(format, args...)}
}

// normalize validates a spec and fills its defaults.
func normalize(spec rpc.OAuthClientSpec) (rpc.OAuthClient, error) {
	c := rpc.OAuthClient{Name: strings.TrimSpace(spec.Name), RedirectURIs: spec.RedirectURIs, Public: spec.Public,
		Role: spec.Role, Workspace: spec.Workspace}
	if c.Name == "" || len(c.Name) > MaxClientNameLen {
		return c, invalid("name is required, at most %d characters", MaxClientNameLen)
	}
	if len(c.RedirectURIs) > MaxRedirectURIs {
		return c, invalid("at most %d redirect URIs", MaxRedirectURIs)
	}
	for _, u := range c.RedirectURIs {
		p, err := url.Parse(u)
		if err != nil || !p.IsAbs() || p.Fragment != "" || p.Host == "" && (p.Scheme == "http" || p.Scheme == "https") {
			return c, invalid("redirect URI %q must be an absolute URI without a fragment", u)
		}
	}
	c.GrantTypes = slices.Clone(spec.GrantTypes)
	if len(c.GrantTypes) == 0 {
		if len(c.RedirectURIs) > 0 {
			c.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
		} else {
			c.GrantTypes = []string{GrantClientCredentials}
		}
	}
	for _, g := range c.GrantTypes {
		switch g {
		case GrantClientCredentials, GrantAuthorizationCode, GrantRefreshToken:
		default:
			return c, invalid("grant type %q must be one of client_credentials, authorization_code, refresh_token", g)
		}
	}
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return c, invalid("an authorization_code client needs a redirect URI")
	}
	if slices.Contains(c.GrantTypes, GrantClientCredentials) {
		if c.Public {
			return c, invalid("a public client cannot use client_credentials")
		}
		switch c.Role {
		case users.RoleOwner:
			c.Workspace = ""
		case users.RoleEditor, users.RoleViewer:
			if !events.ValidToken(c.Workspace) {
				return c, invalid("a %s client needs a workspace", c.Role)
			}
		default:
			return c, invalid("role %q must be one of Owner, Editor, Viewer", c.Role)
		}
	} else {
		c.Role, c.Workspace = "", ""
	}
	c.Scopes = slices.Clone(spec.Scopes)
	if len(c.Scopes) == 0 {
		c.Scopes = []string{ScopeEGS}
		if slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
			c.Scopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOfflineAccess, ScopeEGS}
		}
	}
	for _, s := range c.Scopes {
		if !slices.Contains(knownScopes, s) {
			return c, invalid("scope %q must be one of %s", s, strings.Join(knownScopes, ", "))
		}
	}
	return c, nil
}

// Create registers a client and returns it with its secret (once).
func (m *Clients) Create(ctx context.Context, spec rpc.OAuthClientSpec) (rpc.OAuthClientCreated, error) {
	c, err := normalize(spec)
	if err != nil {
		return rpc.OAuthClientCreated{}, err
	}
	if c.Workspace != "" {
		ok, err := m.workspaces.Exists(ctx, c.Workspace)
		if err != nil {
			return rpc.OAuthClientCreated{}, err
		}
		if !ok {
			return rpc.OAuthClientCreated{}, rpc.Errorf(rpc.NotFound, "workspace %q not found", c.Workspace)
		}
	}
	c.ID = ClientIDPrefix + users.Hash(users.NewSecret(""))[:16]
	c.CreatedAt = m.now().UTC().Truncate(time.Second)
	stored := Client{OAuthClient: c}
	secret := ""
	if !c.Public {
		secret = users.NewSecret(ClientSecretPrefix)
		stored.SecretHash = users.Hash(secret)
	}
	if err := m.store.Create(ctx, stored); err != nil {
		return rpc.OAuthClientCreated{}, err
	}
	err = m.events.Publish(ctx, events.AuthFamilyClient, c.ID, events.AuthCreated, c.ID+".created",
		events.AuthAudit{Action: "client.created", Actor: spec.Actor, Target: c.ID, At: c.CreatedAt,
			Detail: "grants=" + strings.Join(c.GrantTypes, ",") + " role=" + c.Role + " workspace=" + c.Workspace})
	return rpc.OAuthClientCreated{Client: c, Secret: secret}, err
}

// List returns every client sorted by id.
func (m *Clients) List(ctx context.Context) ([]rpc.OAuthClient, error) {
	all, err := m.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rpc.OAuthClient, 0, len(all))
	for _, c := range all {
		out = append(out, c.OAuthClient)
	}
	slices.SortFunc(out, func(a, b rpc.OAuthClient) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Delete removes a client. Its deleted event goes out first: the edges then
// refuse the client's tokens (their subject) for a token lifetime.
func (m *Clients) Delete(ctx context.Context, id, actor string) error {
	if _, err := m.store.Get(ctx, id); err != nil {
		return err
	}
	if err := m.events.Publish(ctx, events.AuthFamilyClient, id, events.AuthDeleted, id+".deleted",
		events.AuthAudit{Action: "client.deleted", Actor: actor, Target: id, At: m.now().UTC()}); err != nil {
		return err
	}
	return m.store.Delete(ctx, id)
}

// fositeClient is the fosite view of a client.
func fositeClient(c Client) *fosite.DefaultClient {
	return &fosite.DefaultClient{
		ID:            c.ID,
		Secret:        []byte(c.SecretHash),
		RedirectURIs:  c.RedirectURIs,
		GrantTypes:    c.GrantTypes,
		ResponseTypes: []string{"code"},
		Scopes:        c.Scopes,
		Public:        c.Public,
	}
}

// SHA256Hasher compares client secrets by SHA-256: 256 random bits need no
// slow hash, and bcrypt would cost ~100 ms per client_credentials grant.
type SHA256Hasher struct{}

// Hash returns the hex SHA-256 of data.
func (SHA256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return []byte(hex.EncodeToString(sum[:])), nil
}

// Compare checks data against a hash made by Hash, in constant time.
func (h SHA256Hasher) Compare(ctx context.Context, hash, data []byte) error {
	got, _ := h.Hash(ctx, data)
	if len(hash) == 0 || subtle.ConstantTimeCompare(got, hash) != 1 {
		return errors.New("client secret mismatch")
	}
	return nil
}
