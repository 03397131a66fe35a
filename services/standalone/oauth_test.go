package standalone_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// oauthStack is an auth stack with two edges, one workspace (ws-a, plus
// ws-b for cross-workspace checks) and a user bob (Viewer of ws-a).
func oauthStack(t *testing.T) (*authStack, string, string) {
	t.Helper()
	st := newAuthStack(t)
	e0, e1 := st.edges[st.addEdge()], st.edges[st.addEdge()]
	for _, ws := range []string{"ws-a", "ws-b"} {
		mustStatus(t, "create "+ws, asAdmin(t, "POST", e0+"/api/v1/slice-workspace", map[string]any{"workspaceName": ws,
			"clusters": []string{"c1"}, "namespaces": []string{ws}, "username": "owner", "email": "owner@example.com"}), 200)
	}
	mustStatus(t, "create bob", asAdmin(t, "POST", e0+"/api/v1/admin/users", map[string]any{"username": "bob",
		"email": "bob@example.com", "workspaces": []map[string]string{{"name": "ws-a", "role": "Viewer"}}}), 201)
	return st, e0, e1
}

// registerClient registers an OAuth2 client and returns its id and secret.
func registerClient(t *testing.T, edge string, body map[string]any) (string, string) {
	t.Helper()
	d := mustStatus(t, "register client", asAdmin(t, "POST", edge+"/api/v1/admin/oauth-clients", body), 201).data()
	c, _ := d["client"].(map[string]any)
	id, _ := c["clientId"].(string)
	secret, _ := d["clientSecret"].(string)
	return id, secret
}

func TestClientCredentialsAndRevocation(t *testing.T) {
	st, e0, e1 := oauthStack(t)
	id, secret := registerClient(t, e0, map[string]any{"name": "ci", "role": "Editor", "workspace": "ws-a"})
	if !strings.HasPrefix(id, "egsc-") || !strings.HasPrefix(secret, "egss_") {
		t.Fatalf("client %q secret %q", id, secret)
	}
	if l := mustStatus(t, "list clients", asAdmin(t, "GET", e0+"/api/v1/admin/oauth-clients", nil), 200); strings.Contains(l.body, secret) {
		t.Fatal("client list shows the secret")
	}
	ctx := context.Background()
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: st.issuerURL() + "/oauth2/token", Scopes: []string{"egs"}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if tok.AccessToken == "" || time.Until(tok.Expiry) < 10*time.Minute {
		t.Fatalf("token %+v", tok)
	}
	b := newSClient(t)
	bearer := "Bearer " + tok.AccessToken
	l := mustStatus(t, "list with the client token", b.do("GET", e1+"/api/v1/slice-workspace/list", nil, "Authorization", bearer), 200)
	if !strings.Contains(l.body, `"ws-a"`) || strings.Contains(l.body, `"ws-b"`) {
		t.Errorf("an Editor client of ws-a lists %s", l.body)
	}
	mustStatus(t, "other workspace", b.do("GET", e1+"/api/v1/gpr-template-binding?gprTemplateBindingName=ws-b", nil, "Authorization", bearer), 403)
	cc.ClientSecret = secret + "x"
	if _, err := cc.Token(ctx); err == nil {
		t.Fatal("a wrong client secret got a token")
	}
	cc.ClientSecret = secret

	// Introspection (RFC 7662) and revocation (RFC 7009).
	if got := introspect(t, st.issuerURL(), id, secret, tok.AccessToken); got["active"] != true || got["client_id"] != id {
		t.Fatalf("introspection of a live token: %v", got)
	}
	if got := introspect(t, st.issuerURL(), id, secret, "not-a-token"); got["active"] != false {
		t.Fatalf("introspection of garbage: %v", got)
	}
	form := url.Values{"token": {tok.AccessToken}}
	req, _ := http.NewRequest("POST", st.issuerURL()+"/oauth2/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := introspect(t, st.issuerURL(), id, secret, tok.AccessToken); got["active"] != false {
		t.Fatalf("introspection of a revoked token: %v", got)
	}
	took := within(t, time.Second, "a revoked access token is refused by every edge", func() bool {
		return b.do("GET", e0+"/api/v1/slice-workspace/list", nil, "Authorization", bearer).status == 401 &&
			b.do("GET", e1+"/api/v1/slice-workspace/list", nil, "Authorization", bearer).status == 401
	})
	t.Logf("revoked access token refused on both edges after %v", took)

	// Deleting the client ends its tokens on every edge.
	tok, err = cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bearer = "Bearer " + tok.AccessToken
	mustStatus(t, "fresh token", b.do("GET", e1+"/api/v1/slice-workspace/list", nil, "Authorization", bearer), 200)
	mustStatus(t, "delete client", asAdmin(t, "DELETE", e0+"/api/v1/admin/oauth-clients/"+id, nil), 200)
	within(t, time.Second, "a deleted client's token is refused", func() bool {
		return b.do("GET", e1+"/api/v1/slice-workspace/list", nil, "Authorization", bearer).status == 401
	})
	if _, err := cc.Token(ctx); err == nil {
		t.Fatal("a deleted client got a token")
	}
}

func introspect(t *testing.T, issuer, id, secret, tok string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("introspection answer %d %q", resp.StatusCode, raw)
	}
	return out
}

func randomString(t *testing.T) string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// authorize sends a logged-in browser to the authorization endpoint and
// returns the redirect it answers with.
func authorize(t *testing.T, b *sclient, authURL string) *url.URL {
	t.Helper()
	a := b.do("GET", authURL, nil)
	if a.status != http.StatusSeeOther && a.status != http.StatusFound {
		t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	u, err := url.Parse(a.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestAuthorizationCodeWithOIDC is the acceptance test: go-oidc discovers
// the issuer and verifies the ID token of an authorization-code login
// (PKCE S256) by a portal user; the access token works at the edge as the
// user, refresh tokens rotate and a reused one revokes the grant; PKCE
// downgrades and foreign redirect URIs are refused; a rotated signing key
// keeps verifying its tokens until it is revoked.
func TestAuthorizationCodeWithOIDC(t *testing.T) {
	st, e0, e1 := oauthStack(t)
	ctx := context.Background()
	redirect := "http://127.0.0.1:1/callback"
	id, secret := registerClient(t, e0, map[string]any{"name": "portal-app", "redirectUris": []string{redirect}})

	provider, err := oidc.NewProvider(ctx, st.issuerURL())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	cfg := oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: redirect,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess, "egs"}}

	// Without a portal session the browser is sent to the portal's login.
	b := newSClient(t)
	verifier, state, nonce := oauth2.GenerateVerifier(), randomString(t), randomString(t)
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	if u := authorize(t, b, authURL); u.Path != "/login" || !strings.HasPrefix(u.Query().Get("next"), "/oauth2/auth?") {
		t.Fatalf("no session: sent to %v", u)
	}
	// Log bob in (direct link), then authorize.
	dl := mustStatus(t, "direct link", asAdmin(t, "POST", e0+"/api/v1/admin/users/bob/direct-login", nil), 201).data()
	mustStatus(t, "direct login", b.do("GET", e0+dl["url"].(string), nil), http.StatusSeeOther)
	u := authorize(t, b, authURL)
	if u.Host != "127.0.0.1:1" || u.Query().Get("state") != state || u.Query().Get("code") == "" {
		t.Fatalf("authorize redirect %v", u)
	}
	tok, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: id}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("go-oidc verify: %v", err)
	}
	var claims struct {
		Email     string `json:"email"`
		Preferred string `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil || idt.Nonce != nonce || idt.Subject != "user:bob" || claims.Email != "bob@example.com" ||
		claims.Preferred != "bob" {
		t.Fatalf("id token: sub %q nonce ok %v claims %+v (%v)", idt.Subject, idt.Nonce == nonce, claims, err)
	}
	// The code is single use.
	if _, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a code was exchanged twice")
	}

	// The access token acts as bob: his workspace only, read only.
	api := newSClient(t)
	bearer := func(tk *oauth2.Token) []string { return []string{"Authorization", "Bearer " + tk.AccessToken} }
	// The second use of the code revoked what the first issued (RFC 6749 §4.1.2).
	within(t, time.Second, "tokens of a code used twice are revoked", func() bool {
		return api.do("GET", e1+"/api/v1/slice-workspace/list", nil, bearer(tok)...).status == 401
	})
	verifier, state, nonce = oauth2.GenerateVerifier(), randomString(t), randomString(t)
	u = authorize(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	tok, err = cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	l := mustStatus(t, "bob lists", api.do("GET", e1+"/api/v1/slice-workspace/list", nil, bearer(tok)...), 200)
	if !strings.Contains(l.body, `"ws-a"`) || strings.Contains(l.body, `"ws-b"`) {
		t.Errorf("bob's list: %s", l.body)
	}
	mustStatus(t, "bob writes", api.do("DELETE", e1+"/api/v1/gpr-template-binding", map[string]string{"gprTemplateBindingName": "ws-a"}, bearer(tok)...), 403)

	// Refresh rotates; presenting the old refresh token again revokes the grant.
	ts := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
	tok2, err := ts.Token()
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %+v %v", tok2, err)
	}
	mustStatus(t, "refreshed token", api.do("GET", e1+"/api/v1/slice-workspace/list", nil, bearer(tok2)...), 200)
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a rotated refresh token was accepted again")
	}
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Fatal("after reuse, the grant's newest refresh token still works")
	}
	within(t, time.Second, "reuse revokes the grant's access token", func() bool {
		return api.do("GET", e0+"/api/v1/slice-workspace/list", nil, bearer(tok2)...).status == 401
	})

	// PKCE is required and only S256; redirect URIs must match exactly.
	state = randomString(t)
	refused := map[string]string{
		"no PKCE":       cfg.AuthCodeURL(state, oidc.Nonce(nonce)),
		"plain PKCE":    cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")),
		"no method":     cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.SetAuthURLParam("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))),
		"redirect miss": cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("redirect_uri", "http://evil.example/cb")),
	}
	for name, au := range refused {
		a := b.do("GET", au, nil)
		loc, _ := url.Parse(a.header.Get("Location"))
		switch {
		case name == "redirect miss":
			if loc != nil && loc.Host == "evil.example" || a.status < 400 {
				t.Errorf("%s: %d to %v, want an error page", name, a.status, loc)
			}
		case loc == nil || loc.Host != "127.0.0.1:1" || loc.Query().Get("error") == "" || loc.Query().Get("code") != "":
			t.Errorf("%s: %d to %v, want an error redirect without a code", name, a.status, loc)
		}
	}
	// A verifier that does not match the challenge is refused at the token endpoint.
	verifier = oauth2.GenerateVerifier()
	u = authorize(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	if _, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Fatal("a wrong PKCE verifier was accepted")
	}

	// Key rotation: tokens of the old key keep working until it is revoked.
	verifier = oauth2.GenerateVerifier()
	u = authorize(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	old, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rot := mustStatus(t, "rotate", asAdmin(t, "POST", e0+"/api/v1/admin/signing-keys/rotate", nil), 200).data()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	resp, err := http.Get(st.issuerURL() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 2 || jwks.Keys[0].Kid != rot["kid"] || jwks.Keys[1].Kid != rot["retiredKid"] {
		t.Fatalf("jwks after rotation %+v, rotation %v", jwks, rot)
	}
	mustStatus(t, "old key's token after rotation", api.do("GET", e1+"/api/v1/slice-workspace/list", nil, bearer(old)...), 200)
	verifier = oauth2.GenerateVerifier()
	u = authorize(t, b, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	fresh, err := cfg.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: id}).Verify(ctx, fresh.Extra("id_token").(string)); err != nil {
		t.Fatalf("ID token of the new key: %v", err)
	}
	mustStatus(t, "revoke old key", asAdmin(t, "DELETE", e0+"/api/v1/admin/signing-keys/"+rot["retiredKid"].(string), nil), 200)
	within(t, time.Second, "the revoked key's tokens are refused", func() bool {
		return api.do("GET", e1+"/api/v1/slice-workspace/list", nil, bearer(old)...).status == 401
	})
	mustStatus(t, "new key's token", api.do("GET", e1+"/api/v1/slice-workspace/list", nil, bearer(fresh)...), 200)
}
