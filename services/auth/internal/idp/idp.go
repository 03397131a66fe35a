// Package idp logs portal users in through upstream OpenID providers: the
// auth service as an OIDC relying party, with the authorization code flow,
// PKCE (S256), state and nonce, the ID token verified against the
// provider's JWKS (coreos/go-oidc), the claims mapped to a username, an
// email and, by rules on any claim (usually groups), workspaces with roles.
//
// A login is bound to the browser that started it: Start returns a random
// binding secret the edge keeps in a short-lived cookie; the PKCE verifier
// and the nonce are derived from it (HMAC) and the state's record in Redis
// holds only its SHA-256, so neither Redis nor the redirect carries
// anything with which another browser could finish the login.
package idp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// StateTTL is how long a started login may take.
const StateTTL = 10 * time.Minute

const stateKey = "egs:idp:state:"

// ErrLogin is the class of every refused login; its message is safe for users.
type ErrLogin struct{ msg string }

func (e *ErrLogin) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &ErrLogin{msg: fmt.Sprintf(format, args...)} }

// Mapping grants a workspace role (or the admin flag) to users whose claim
// Claim (default: the provider's groups claim) equals Value or, for a list
// claim, contains it.
type Mapping struct {
	Claim     string `json:"claim"`
	Value     string `json:"value"`
	Workspace string `json:"workspace"`
	Role      string `json:"role"`
	Admin     bool   `json:"admin"`
}

// ProviderConfig is one upstream provider.
type ProviderConfig struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Issuer        string    `json:"issuer"`
	ClientID      string    `json:"clientId"`
	ClientSecret  string    `json:"clientSecret"`
	Scopes        []string  `json:"scopes"`        // default openid, profile, email
	UsernameClaim string    `json:"usernameClaim"` // default preferred_username
	EmailClaim    string    `json:"emailClaim"`    // default email
	GroupsClaim   string    `json:"groupsClaim"`   // default groups
	Mappings      []Mapping `json:"mappings"`
}

// Config is the IdP configuration file: the providers and the edge's
// callback URL (default <issuer URL>/login/idp/callback).
type Config struct {
	RedirectURL string           `json:"redirectUrl"`
	Providers   []ProviderConfig `json:"providers"`
}

// Load reads a configuration file (JSON).
func Load(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read idp config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode idp config %s: %w", path, err)
	}
	return c, c.Validate()
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i := range c.Providers {
		p := &c.Providers[i]
		if !events.ValidToken(p.ID) || seen[p.ID] {
			errs = append(errs, fmt.Errorf("provider %d: id %q must be a unique token", i, p.ID))
		}
		seen[p.ID] = true
		if p.Issuer == "" || p.ClientID == "" {
			errs = append(errs, fmt.Errorf("provider %s: issuer and clientId are required", p.ID))
		}
		if p.Name == "" {
			p.Name = p.ID
		}
		if len(p.Scopes) == 0 {
			p.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
		}
		if !slices.Contains(p.Scopes, oidc.ScopeOpenID) {
			p.Scopes = append([]string{oidc.ScopeOpenID}, p.Scopes...)
		}
		p.UsernameClaim = cmpOr(p.UsernameClaim, "preferred_username")
		p.EmailClaim = cmpOr(p.EmailClaim, "email")
		p.GroupsClaim = cmpOr(p.GroupsClaim, "groups")
		for j, m := range p.Mappings {
			if m.Value == "" || (!m.Admin && (!events.ValidToken(m.Workspace) ||
				m.Role != users.RoleOwner && m.Role != users.RoleEditor && m.Role != users.RoleViewer)) {
				errs = append(errs, fmt.Errorf("provider %s mapping %d: value and either admin or a workspace with a role are required", p.ID, j))
			}
		}
	}
	return errors.Join(errs...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Manager runs IdP logins. It is safe for concurrent use.
type Manager struct {
	cfg        Config
	rdb        redis.UniversalClient
	users      *users.Manager
	workspaces users.Workspaces
	now        func() time.Time

	mu        sync.Mutex
	providers map[string]*oidc.Provider // discovered lazily: an IdP may be down at start
}

// NewManager returns the IdP login use cases; rdb keeps the pending logins.
func NewManager(cfg Config, rdb redis.UniversalClient, um *users.Manager, ws users.Workspaces, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{cfg: cfg, rdb: rdb, users: um, workspaces: ws, now: now, providers: map[string]*oidc.Provider{}}
}

// Providers lists the configured providers.
func (m *Manager) Providers() []rpc.Provider {
	out := make([]rpc.Provider, 0, len(m.cfg.Providers))
	for _, p := range m.cfg.Providers {
		out = append(out, rpc.Provider{ID: p.ID, Name: p.Name})
	}
	return out
}

func (m *Manager) provider(id string) (ProviderConfig, bool) {
	for _, p := range m.cfg.Providers {
		if p.ID == id {
			return p, true
		}
	}
	return ProviderConfig{}, false
}

func (m *Manager) discover(ctx context.Context, p ProviderConfig) (*oidc.Provider, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if op, ok := m.providers[p.ID]; ok {
		return op, nil
	}
	op, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", p.Issuer, err)
	}
	m.providers[p.ID] = op
	return op, nil
}

func (m *Manager) oauth2Config(p ProviderConfig, op *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, Endpoint: op.Endpoint(),
		RedirectURL: m.cfg.RedirectURL, Scopes: p.Scopes}
}

func random() string { return users.NewSecret("") }

// derive is HMAC-SHA256(binding, label|state), base64url: 43 characters.
func derive(binding, label, state string) string {
	h := hmac.New(sha256.New, []byte(binding))
	h.Write([]byte(label + "|" + state))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

type pending struct {
	Provider    string    `json:"provider"`
	BindingHash string    `json:"bindingHash"`
	At          time.Time `json:"at"`
}

// Start begins a login at provider: the URL to send the browser to and the
// binding secret to keep in its cookie.
func (m *Manager) Start(ctx context.Context, providerID string) (rpc.IdPStart, error) {
	p, ok := m.provider(providerID)
	if !ok {
		return rpc.IdPStart{}, refuse("Unknown identity provider %q", providerID)
	}
	op, err := m.discover(ctx, p)
	if err != nil {
		return rpc.IdPStart{}, err
	}
	state, binding := random(), random()
	b, _ := json.Marshal(pending{Provider: p.ID, BindingHash: users.Hash(binding), At: m.now().UTC()})
	if err := m.rdb.Set(ctx, stateKey+users.Hash(state), b, StateTTL).Err(); err != nil {
		return rpc.IdPStart{}, fmt.Errorf("store idp login state: %w", err)
	}
	verifier := derive(binding, "pkce", state)
	u := m.oauth2Config(p, op).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oidc.Nonce(derive(binding, "nonce", state)))
	return rpc.IdPStart{URL: u, Binding: binding}, nil
}

// Finish completes a login: the state is spent (once), the browser's
// binding checked, the code exchanged with the PKCE verifier, the ID token
// verified (signature, issuer, audience, expiry, nonce), the claims (ID
// token and userinfo) mapped, and the user created or brought up to date.
// It returns the user and the provider id.
func (m *Manager) Finish(ctx context.Context, req rpc.IdPFinishRequest) (rpc.User, string, error) {
	if req.State == "" || req.Code == "" {
		return rpc.User{}, "", refuse("The identity provider's answer is incomplete")
	}
	b, err := m.rdb.GetDel(ctx, stateKey+users.Hash(req.State)).Bytes()
	if errors.Is(err, redis.Nil) {
		return rpc.User{}, "", refuse("This login has expired or was already used; start again")
	}
	if err != nil {
		return rpc.User{}, "", fmt.Errorf("read idp login state: %w", err)
	}
	var pd pending
	if err := json.Unmarshal(b, &pd); err != nil {
		return rpc.User{}, "", fmt.Errorf("decode idp login state: %w", err)
	}
	if req.Binding == "" || subtle.ConstantTimeCompare([]byte(users.Hash(req.Binding)), []byte(pd.BindingHash)) != 1 {
		return rpc.User{}, pd.Provider, refuse("This login was started in another browser")
	}
	p, ok := m.provider(pd.Provider)
	if !ok {
		return rpc.User{}, pd.Provider, refuse("Unknown identity provider %q", pd.Provider)
	}
	op, err := m.discover(ctx, p)
	if err != nil {
		return rpc.User{}, p.ID, err
	}
	oc := m.oauth2Config(p, op)
	tok, err := oc.Exchange(ctx, req.Code, oauth2.VerifierOption(derive(req.Binding, "pkce", req.State)))
	if err != nil {
		return rpc.User{}, p.ID, refuse("The identity provider refused the login")
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: p.ClientID, Now: m.now}).Verify(ctx, rawID)
	if err != nil {
		return rpc.User{}, p.ID, refuse("The identity provider's ID token is not valid")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(derive(req.Binding, "nonce", req.State))) != 1 {
		return rpc.User{}, p.ID, refuse("The identity provider's ID token is not valid")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return rpc.User{}, p.ID, fmt.Errorf("decode id token claims: %w", err)
	}
	if ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		extra := map[string]any{}
		if err := ui.Claims(&extra); err == nil && extra["sub"] == idt.Subject {
			for k, v := range extra {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	u, err := m.provision(ctx, p, claims)
	return u, p.ID, err
}

// provision creates the user an IdP login stands for, or updates a user the
// IdP made before (the IdP is their source of truth); users an admin made
// keep their roles.
func (m *Manager) provision(ctx context.Context, p ProviderConfig, claims map[string]any) (rpc.User, error) {
	name := strings.ToLower(strings.TrimSpace(claimString(claims, p.UsernameClaim)))
	if !users.ValidUsername(name) {
		return rpc.User{}, refuse("The identity provider's username %q is not a valid EGS username", name)
	}
	spec := rpc.UserSpec{Actor: rpc.LoginIdPPrefix + p.ID, Username: name, Email: claimString(claims, p.EmailClaim)}
	roles := map[string]string{}
	for _, mp := range p.Mappings {
		if !claimHas(claims, cmpOr(mp.Claim, p.GroupsClaim), mp.Value) {
			continue
		}
		if mp.Admin {
			spec.Admin = true
			continue
		}
		if rank(mp.Role) > rank(roles[mp.Workspace]) {
			roles[mp.Workspace] = mp.Role
		}
	}
	for ws, role := range roles {
		ok, err := m.workspaces.Exists(ctx, ws)
		if err != nil {
			return rpc.User{}, err
		}
		if ok { // a mapping to a workspace that is gone grants nothing
			spec.Workspaces = append(spec.Workspaces, rpc.WorkspaceRole{Name: ws, Role: role})
		}
	}
	source := rpc.LoginIdPPrefix + p.ID
	u, err := m.users.Get(ctx, name)
	switch {
	case errors.Is(err, users.ErrNotFound):
		u, err = m.users.Create(ctx, spec, source)
		if errors.Is(err, users.ErrExists) { // a concurrent first login
			return m.users.Get(ctx, name)
		}
		return u, err
	case err != nil:
		return rpc.User{}, err
	case u.Source != source:
		return u, nil
	case u.Email == spec.Email && u.Admin == spec.Admin && sameRoles(u.Workspaces, spec.Workspaces):
		return u, nil
	}
	return m.users.Update(ctx, spec)
}

func rank(role string) int {
	switch role {
	case users.RoleViewer:
		return 1
	case users.RoleEditor:
		return 2
	case users.RoleOwner:
		return 3
	}
	return 0
}

func sameRoles(a, b []rpc.WorkspaceRole) bool {
	if len(a) != len(b) {
		return false
	}
	for _, w := range b {
		if !slices.Contains(a, w) {
			return false
		}
	}
	return true
}

func claimString(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// claimHas reports whether claim name equals value or, as a list, holds it.
func claimHas(claims map[string]any, name, value string) bool {
	switch v := claims[name].(type) {
	case string:
		return v == value
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s == value {
				return true
			}
		}
	}
	return false
}
