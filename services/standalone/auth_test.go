package standalone_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPortalSessions drives the portal logins of the session contract
// through two edges sharing one Redis, with the real auth and workspace
// services: access-token, direct and Owner API token logins, the cookie and
// CSRF rules, authorisation by the user's workspaces, logout, logout-all,
// admin revocation, revocation of the credential, and sessions surviving a
// restart of an edge and of auth.
func TestPortalSessions(t *testing.T) {
	st := newAuthStack(t)
	e0, e1 := st.edges[st.addEdge()], st.edges[st.addEdge()]
	for _, ws := range []string{"ws-a", "ws-b", "ws-c"} {
		mustStatus(t, "create "+ws, asAdmin(t, "POST", e0+"/api/v1/slice-workspace", map[string]any{"workspaceName": ws,
			"clusters": []string{"c1"}, "namespaces": []string{ws}, "username": "owner", "email": "owner@example.com"}), 200)
	}
	u := mustStatus(t, "create alice", asAdmin(t, "POST", e0+"/api/v1/admin/users", map[string]any{"username": "alice",
		"email": "alice@example.com", "workspaces": []map[string]string{{"name": "ws-a", "role": "Editor"}, {"name": "ws-b", "role": "Viewer"}}}), 201)
	if u.data()["username"] != "alice" || u.env["statusCode"] != float64(201) {
		t.Fatalf("created user: %s", u.body)
	}
	mustStatus(t, "duplicate user", asAdmin(t, "POST", e0+"/api/v1/admin/users", map[string]any{"username": "alice"}), 409)
	mustStatus(t, "user of an unknown workspace", asAdmin(t, "POST", e0+"/api/v1/admin/users", map[string]any{"username": "zed",
		"workspaces": []map[string]string{{"name": "nope", "role": "Viewer"}}}), 404)
	tok := mustStatus(t, "issue token", asAdmin(t, "POST", e0+"/api/v1/admin/users/alice/access-tokens", nil), 201).data()
	secret, _ := tok["token"].(string)
	if !strings.HasPrefix(secret, "egsu_") || tok["id"] == "" {
		t.Fatalf("issued token: %v", tok)
	}
	if l := mustStatus(t, "list tokens", asAdmin(t, "GET", e0+"/api/v1/admin/users/alice/access-tokens", nil), 200); strings.Contains(l.body, secret) ||
		len(l.list()) != 1 {
		t.Fatalf("token list: %s", l.body)
	}

	// Wrong tokens are refused with the contract's messages.
	b := newSClient(t)
	if a := b.login(e0, "egsu_wrong"); a.status != 401 || a.msg() != "Invalid access token" {
		t.Fatalf("wrong token: %d %s", a.status, a.body)
	}
	mustStatus(t, "no token", b.do("POST", e0+"/api/v1/session/login", map[string]string{}), 400)
	mustStatus(t, "no session", b.session(e0), 401)

	// Access-token login: cookie flags, session object.
	a := mustStatus(t, "login", b.login(e0, secret), 200)
	ck := a.header.Get("Set-Cookie")
	if !strings.HasPrefix(ck, "egs_session=") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") ||
		!strings.Contains(ck, "Path=/") || strings.Contains(ck, "Secure") {
		t.Errorf("cookie %q: want HttpOnly, SameSite=Lax, Path=/, not Secure over plain HTTP", ck)
	}
	d := a.data()
	if got := workspaceNames(d["workspaces"]); !slices.Equal(got, []string{"ws-a:Editor", "ws-b:Viewer"}) || d["loginMethod"] != "access-token" ||
		b.csrf == "" || d["user"].(map[string]any)["email"] != "alice@example.com" {
		t.Fatalf("session: %s", a.body)
	}
	if exp, err := time.Parse(time.RFC3339, d["expiresAt"].(string)); err != nil || time.Until(exp) < time.Hour {
		t.Errorf("expiresAt %v (%v)", d["expiresAt"], err)
	}
	// The other edge knows the session (Redis), and lists only her workspaces.
	mustStatus(t, "session on edge 1", b.session(e1), 200)
	l := mustStatus(t, "list workspaces", b.do("GET", e1+"/api/v1/slice-workspace/list", nil), 200)
	if !strings.Contains(l.body, `"ws-a"`) || !strings.Contains(l.body, `"ws-b"`) || strings.Contains(l.body, `"ws-c"`) {
		t.Errorf("alice's workspace list: %s", l.body)
	}

	// CSRF: a cookie write without the token is refused; with it, the role decides.
	binding := map[string]string{"gprTemplateBindingName": "ws-a"}
	if a := b.do("DELETE", e0+"/api/v1/gpr-template-binding", binding); a.status != 403 || a.msg() != "CSRF token missing or invalid" {
		t.Fatalf("write without CSRF: %d %s", a.status, a.body)
	}
	if a := b.do("DELETE", e0+"/api/v1/gpr-template-binding", binding, "X-CSRF-Token", "forged"); a.status != 403 {
		t.Fatalf("write with a forged CSRF token: %d", a.status)
	}
	if a := b.write("DELETE", e0+"/api/v1/gpr-template-binding", binding); a.status == 403 || a.status == 401 {
		t.Fatalf("Editor's write in ws-a: %d %s", a.status, a.body)
	}
	for _, ws := range []string{"ws-b", "ws-c"} { // Viewer, and none
		if a := b.write("DELETE", e0+"/api/v1/gpr-template-binding", map[string]string{"gprTemplateBindingName": ws}); a.status != 403 {
			t.Errorf("write in %s: %d %s, want 403", ws, a.status, a.body)
		}
	}
	mustStatus(t, "read another workspace", b.do("GET", e0+"/api/v1/gpr-template-binding?gprTemplateBindingName=ws-c", nil), 403)
	mustStatus(t, "admin route", b.do("GET", e0+"/api/v1/admin/users", nil), 403)
	mustStatus(t, "create workspace", b.write("POST", e0+"/api/v1/slice-workspace", map[string]any{"workspaceName": "ws-x"}), 403)

	// The session survives a restart of an edge and of auth.
	st.restartEdge(0)
	e0 = st.edges[0]
	st.restartAuth()
	mustStatus(t, "session after restarts", b.session(e0), 200)

	// Revoking the access token ends its sessions on every edge within 1 s.
	id, _ := tok["id"].(string)
	mustStatus(t, "revoke token", asAdmin(t, "DELETE", e1+"/api/v1/admin/users/alice/access-tokens/"+id, nil), 200)
	took := within(t, time.Second, "session of a revoked token ends", func() bool {
		return b.do("GET", e0+"/api/v1/slice-workspace/list", nil).status == 401 && b.session(e1).status == 401
	})
	t.Logf("revoked token's session refused after %v", took)
	if a := b.login(e0, secret); a.status != 401 || a.msg() != "Access token revoked" {
		t.Fatalf("login with a revoked token: %d %s", a.status, a.body)
	}

	// Direct login: single use, then refused with a message on the login page.
	dl := mustStatus(t, "direct link", asAdmin(t, "POST", e0+"/api/v1/admin/users/alice/direct-login", map[string]string{"ttl": "10m"}), 201).data()
	link, _ := dl["url"].(string)
	if !strings.HasPrefix(link, "/login/direct?code=") {
		t.Fatalf("direct link %q", link)
	}
	b2 := newSClient(t)
	a = b2.do("GET", e1+link, nil)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/" || !strings.Contains(a.header.Get("Set-Cookie"), "egs_session=") {
		t.Fatalf("direct login: %d %v", a.status, a.header)
	}
	if s := mustStatus(t, "direct session", b2.session(e0), 200).data(); s["loginMethod"] != "direct" {
		t.Errorf("direct session: %v", s)
	}
	a = newSClient(t).do("GET", e0+link, nil)
	loc, _ := url.Parse(a.header.Get("Location"))
	if a.status != http.StatusSeeOther || loc.Path != "/login" || loc.Query().Get("error") != "Login link is invalid or was already used" {
		t.Fatalf("second use: %d %q", a.status, a.header.Get("Location"))
	}

	// Logout ends one session; logout-all every session of the user.
	b3 := newSClient(t)
	dl = mustStatus(t, "direct link 2", asAdmin(t, "POST", e0+"/api/v1/admin/users/alice/direct-login", nil), 201).data()
	mustStatus(t, "direct login 2", b3.do("GET", e0+dl["url"].(string), nil), http.StatusSeeOther)
	mustStatus(t, "session 3", b3.session(e0), 200)
	mustStatus(t, "logout without CSRF", b3.do("POST", e0+"/api/v1/session/logout", nil), 403)
	a = mustStatus(t, "logout", b3.write("POST", e0+"/api/v1/session/logout", nil), 200)
	if !strings.Contains(a.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout did not clear the cookie: %q", a.header.Get("Set-Cookie"))
	}
	mustStatus(t, "after logout", b3.session(e0), 401)
	mustStatus(t, "b2 still in", b2.session(e1), 200)
	b4 := newSClient(t)
	dl = mustStatus(t, "direct link 3", asAdmin(t, "POST", e0+"/api/v1/admin/users/alice/direct-login", nil), 201).data()
	mustStatus(t, "direct login 3", b4.do("GET", e0+dl["url"].(string), nil), http.StatusSeeOther)
	mustStatus(t, "session 4", b4.session(e0), 200)
	if a := mustStatus(t, "logout-all", b4.write("POST", e0+"/api/v1/session/logout-all", nil), 200); a.data()["revoked"] != float64(2) {
		t.Errorf("logout-all: %s", a.body)
	}
	mustStatus(t, "b2 after logout-all", b2.session(e1), 401)
	mustStatus(t, "b4 after logout-all", b4.session(e0), 401)

	// Admin revocation of a user's sessions.
	dl = mustStatus(t, "direct link 4", asAdmin(t, "POST", e0+"/api/v1/admin/users/alice/direct-login", nil), 201).data()
	mustStatus(t, "direct login 4", b4.do("GET", e0+dl["url"].(string), nil), http.StatusSeeOther)
	mustStatus(t, "revoke sessions", asAdmin(t, "POST", e1+"/api/v1/admin/users/alice/revoke-sessions", nil), 200)
	mustStatus(t, "after admin revoke", b4.session(e0), 401)

	// An Owner API token is a portal login to every workspace; deleting the
	// key ends the session on every edge within 1 s.
	k := mustStatus(t, "owner key", asAdmin(t, "POST", e0+"/api/v1/api-key", map[string]string{"name": "ops", "userName": "ops",
		"role": "Owner", "validity": time.Now().AddDate(0, 1, 0).Format("2006-01-02")}), 200).data()
	ob := newSClient(t)
	d = mustStatus(t, "owner key login", ob.login(e1, k["apiKey"].(string)), 200).data()
	if got := workspaceNames(d["workspaces"]); d["loginMethod"] != "api-token" || !slices.Equal(got, []string{"ws-a:Owner", "ws-b:Owner", "ws-c:Owner"}) {
		t.Fatalf("owner session: %v", d)
	}
	mustStatus(t, "owner lists users", ob.do("GET", e0+"/api/v1/admin/users", nil), 200)
	mustStatus(t, "delete owner key", asAdmin(t, "DELETE", e0+"/api/v1/api-key", map[string]string{"apiKey": k["apiKey"].(string)}), 200)
	within(t, time.Second, "session of a deleted key ends", func() bool {
		return ob.session(e0).status == 401 && ob.do("GET", e1+"/api/v1/admin/users", nil).status == 401
	})
	ed := mustStatus(t, "editor key", asAdmin(t, "POST", e0+"/api/v1/api-key", map[string]string{"name": "ed", "role": "Editor",
		"workspaceName": "ws-a", "validity": time.Now().AddDate(0, 1, 0).Format("2006-01-02")}), 200).data()
	if a := newSClient(t).login(e0, ed["apiKey"].(string)); a.status != 401 || a.msg() != "Invalid access token" {
		t.Errorf("Editor key as portal login: %d %s", a.status, a.body)
	}

	// Deleting the user ends their sessions.
	tok = mustStatus(t, "issue token 2", asAdmin(t, "POST", e0+"/api/v1/admin/users/alice/access-tokens", map[string]string{"validity": time.Now().AddDate(0, 0, 2).Format("2006-01-02")}), 201).data()
	mustStatus(t, "login 2", b.login(e0, tok["token"].(string)), 200)
	mustStatus(t, "delete alice", asAdmin(t, "DELETE", e0+"/api/v1/admin/users/alice", nil), 200)
	within(t, time.Second, "deleted user's session ends", func() bool { return b.session(e1).status == 401 })
	mustStatus(t, "deleted user", asAdmin(t, "GET", e0+"/api/v1/admin/users/alice", nil), 404)
}
