package standalone_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/open-egs/egs/services/standalone"
)

// matrixAdmin is the admin token of the matrix product.
const matrixAdmin = "matrix-admin-token-0123456789"

// route is one endpoint of the matrix: its access level and how a request
// naming workspace ws (and a GPR of ws) is made.
type route struct {
	access string // read, write, manage, global
	method string
	path   func(ws, gpr string) string
	body   func(ws, gpr string) any
	// wsBound: the request names a workspace; a principal confined to
	// others must be refused.
	wsBound bool
}

func q(p string) func(ws, gpr string) string {
	return func(ws, gpr string) string {
		return strings.NewReplacer("{ws}", ws, "{gpr}", gpr).Replace(p)
	}
}

func noBody(string, string) any { return nil }

// matrixRoutes lists every route of the API (session and login routes are
// tested by TestPortalSessions and TestIdPLogin).
func matrixRoutes() map[string]route {
	gpr := func(ws, _ string) any { return gprBody(ws, "m") }
	wsBody := func(key string) func(ws, _ string) any {
		return func(ws, _ string) any { return map[string]any{key: ws} }
	}
	return map[string]route{
		"POST api-key": {"global", "POST", q("/api/v1/api-key"), func(ws, _ string) any {
			return map[string]any{"name": "m-" + ws, "role": "Viewer", "workspaceName": ws, "validity": "2099-01-01"}
		}, false},
		"DELETE api-key":            {"global", "DELETE", q("/api/v1/api-key"), func(string, string) any { return map[string]any{"apiKey": "ak-nope"} }, false},
		"GET api-key/list":          {"global", "GET", q("/api/v1/api-key/list"), noBody, false},
		"POST slice-workspace":      {"global", "POST", q("/api/v1/slice-workspace"), func(string, string) any { return map[string]any{"workspaceName": "m-new"} }, false},
		"DELETE slice-workspace":    {"global", "DELETE", q("/api/v1/slice-workspace"), func(string, string) any { return map[string]any{"workspaceName": "m-none"} }, false},
		"GET slice-workspace/list":  {"read", "GET", q("/api/v1/slice-workspace/list"), noBody, false},
		"POST kube-config":          {"write", "POST", q("/api/v1/slice-workspace/kube-config"), func(ws, _ string) any { return map[string]any{"workspaceName": ws} }, true},
		"GET inventory/list":        {"read", "GET", q("/api/v1/inventory/list"), noBody, false},
		"GET inventory":             {"read", "GET", q("/api/v1/inventory?sliceName={ws}"), noBody, true},
		"POST gpr":                  {"write", "POST", q("/api/v1/gpr"), gpr, true},
		"GET gpr":                   {"read", "GET", q("/api/v1/gpr?gprId={gpr}"), noBody, true},
		"PUT gpr":                   {"write", "PUT", q("/api/v1/gpr"), func(_, g string) any { return map[string]any{"gprId": g, "priority": 151} }, true},
		"DELETE gpr":                {"write", "DELETE", q("/api/v1/gpr"), func(_, g string) any { return map[string]any{"gprId": g + "-none"} }, false},
		"GET gpr/list":              {"read", "GET", q("/api/v1/gpr/list?sliceName={ws}"), noBody, true},
		"POST gpr/waittime":         {"write", "POST", q("/api/v1/gpr/waittime"), gpr, true},
		"POST gpr/approve":          {"manage", "POST", q("/api/v1/gpr/approve"), func(_, g string) any { return map[string]any{"gprId": g} }, true},
		"POST gpr/reject":           {"manage", "POST", q("/api/v1/gpr/reject"), func(_, g string) any { return map[string]any{"gprId": g} }, true},
		"POST gpr-template":         {"global", "POST", q("/api/v1/gpr-template"), func(string, string) any { return map[string]any{"name": "m-t"} }, false},
		"GET gpr-template":          {"read", "GET", q("/api/v1/gpr-template?gprTemplateName=none"), noBody, false},
		"PUT gpr-template":          {"global", "PUT", q("/api/v1/gpr-template"), func(string, string) any { return map[string]any{"name": "m-t"} }, false},
		"DELETE gpr-template":       {"global", "DELETE", q("/api/v1/gpr-template"), func(string, string) any { return map[string]any{"name": "m-none"} }, false},
		"GET gpr-template/list":     {"read", "GET", q("/api/v1/gpr-template/list"), noBody, false},
		"POST template-binding":     {"write", "POST", q("/api/v1/gpr-template-binding"), wsBody("workspaceName"), true},
		"GET template-binding":      {"read", "GET", q("/api/v1/gpr-template-binding?gprTemplateBindingName={ws}"), noBody, true},
		"PUT template-binding":      {"write", "PUT", q("/api/v1/gpr-template-binding"), wsBody("workspaceName"), true},
		"DELETE template-binding":   {"write", "DELETE", q("/api/v1/gpr-template-binding"), wsBody("gprTemplateBindingName"), true},
		"GET template-binding/list": {"read", "GET", q("/api/v1/gpr-template-binding/list"), noBody, false},
		"GET workspace-policy":      {"read", "GET", q("/api/v1/workspace-policy?workspaceName={ws}"), noBody, true},
		"PUT workspace-policy":      {"global", "PUT", q("/api/v1/workspace-policy"), func(ws, _ string) any { return map[string]any{"workspaceName": ws, "policy": map[string]any{}} }, true},
		"GET telemetry/gpus":        {"read", "GET", q("/api/v1/telemetry/gpus?workspace={ws}"), noBody, true},
		"GET telemetry/top":         {"read", "GET", q("/api/v1/telemetry/top?workspace={ws}&metric=power"), noBody, true},
		"GET telemetry/series":      {"read", "GET", q("/api/v1/telemetry/series?workspace={ws}&res=1m"), noBody, true},
		"GET metrics":               {"read", "GET", q("/metrics"), noBody, false},
		"PUT sim load":              {"write", "PUT", q("/api/v1/sim/nodes/none/load?cluster=worker-1"), func(string, string) any { return map[string]any{"utilization": 10} }, false},
		"POST admin/users":          {"global", "POST", q("/api/v1/admin/users"), func(string, string) any { return map[string]any{"username": "m-x"} }, false},
		"GET admin/users":           {"global", "GET", q("/api/v1/admin/users"), noBody, false},
		"GET admin/users/{u}":       {"global", "GET", q("/api/v1/admin/users/nobody"), noBody, false},
		"PUT admin/users/{u}":       {"global", "PUT", q("/api/v1/admin/users/nobody"), func(string, string) any { return map[string]any{} }, false},
		"DELETE admin/users/{u}":    {"global", "DELETE", q("/api/v1/admin/users/nobody"), noBody, false},
		"POST access-tokens":        {"global", "POST", q("/api/v1/admin/users/nobody/access-tokens"), noBody, false},
		"GET access-tokens":         {"global", "GET", q("/api/v1/admin/users/nobody/access-tokens"), noBody, false},
		"DELETE access-token":       {"global", "DELETE", q("/api/v1/admin/users/nobody/access-tokens/ut-none"), noBody, false},
		"POST direct-login":         {"global", "POST", q("/api/v1/admin/users/nobody/direct-login"), noBody, false},
		"POST revoke-sessions":      {"global", "POST", q("/api/v1/admin/users/nobody/revoke-sessions"), noBody, false},
		"POST oauth-clients":        {"global", "POST", q("/api/v1/admin/oauth-clients"), func(string, string) any { return map[string]any{} }, false},
		"GET oauth-clients":         {"global", "GET", q("/api/v1/admin/oauth-clients"), noBody, false},
		"DELETE oauth-client":       {"global", "DELETE", q("/api/v1/admin/oauth-clients/egsc-none"), noBody, false},
		"DELETE signing-key":        {"global", "DELETE", q("/api/v1/admin/signing-keys/none"), noBody, false},
	}
}

// principalKind is one kind of caller of the matrix with the workspaces it
// may act in (own: ws-a) and the highest access it has there.
type principalKind struct {
	header func() []string // request headers (bearer or cookie+CSRF)
	level  string          // highest access in its own workspace: read, write, manage, global
	bound  bool            // confined to its workspaces (everyone but admins and Owner keys)
}

func rank(level string) int {
	return map[string]int{"read": 1, "write": 2, "manage": 3, "global": 4}[level]
}

// TestAuthorizationMatrix sends every route, as every kind of principal,
// naming its own workspace and another one, to the whole product, and
// checks each answer: a principal without the route's access, or naming a
// workspace that is not its own, gets 403; one with it never gets 401 or
// 403. Each kind of principal also authenticates by a portal session where
// it can have one.
func TestAuthorizationMatrix(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan standalone.Info, 1)
	done := make(chan error, 1)
	cfg := standalone.Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0",
		BootstrapAPIKey: bootstrapKey, AdminToken: matrixAdmin}
	go func() {
		done <- standalone.Run(ctx, cfg, standalone.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(i standalone.Info) { ready <- i }})
	}()
	var info standalone.Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("standalone stopped: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("standalone not ready")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("standalone did not stop")
		}
	})
	base := "http://" + info.HTTPAddr
	adm := func(method, path string, body any) sanswer {
		return newSClient(t).do(method, base+path, body, "Authorization", "Bearer "+matrixAdmin)
	}
	for _, ws := range []string{"ws-a", "ws-c"} {
		mustStatus(t, "workspace "+ws, adm("POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": ws,
			"clusters": []string{"worker-1"}, "namespaces": []string{ws}, "username": "o", "email": "o@example.com"}), 200)
	}
	gprs := map[string]string{}
	for _, ws := range []string{"ws-a", "ws-c"} {
		a := mustStatus(t, "gpr "+ws, adm("POST", "/api/v1/gpr", gprBody(ws, "g-"+ws)), 200)
		gprs[ws] = a.data()["gprId"].(string)
	}
	key := func(role, ws string) string {
		body := map[string]any{"name": "k-" + role + ws, "role": role, "validity": "2099-01-01"}
		if ws != "" {
			body["workspaceName"] = ws
		}
		secret := mustStatus(t, "key "+role, adm("POST", "/api/v1/api-key", body), 200).data()["apiKey"].(string)
		return mustStatus(t, "exchange", newSClient(t).do("POST", base+"/api/v1/auth", map[string]string{"apiKey": secret}), 200).data()["token"].(string)
	}
	bearer := func(tok string) func() []string {
		return func() []string { return []string{"Authorization", "Bearer " + tok} }
	}
	user := func(name string, admin bool, ws ...string) func() []string {
		var wss []map[string]string
		for i := 0; i+1 < len(ws); i += 2 {
			wss = append(wss, map[string]string{"name": ws[i], "role": ws[i+1]})
		}
		mustStatus(t, "user "+name, adm("POST", "/api/v1/admin/users", map[string]any{"username": name, "admin": admin, "workspaces": wss}), 201)
		tok := mustStatus(t, "token "+name, adm("POST", "/api/v1/admin/users/"+name+"/access-tokens", nil), 201).data()["token"].(string)
		b := newSClient(t)
		mustStatus(t, "login "+name, b.login(base, tok), 200)
		ck := ""
		for _, c := range b.c.Jar.Cookies(mustURL(t, base)) {
			ck = c.Name + "=" + c.Value
		}
		return func() []string { return []string{"Cookie", ck, "X-CSRF-Token", b.csrf} }
	}
	kinds := map[string]principalKind{
		"admin token":        {header: bearer(matrixAdmin), level: "global"},
		"Owner key":          {header: bearer(key("Owner", "")), level: "global"},
		"Editor key":         {header: bearer(key("Editor", "ws-a")), level: "write", bound: true},
		"Viewer key":         {header: bearer(key("Viewer", "ws-a")), level: "read", bound: true},
		"admin user session": {header: user("adm", true), level: "global"},
		"Owner user session": {header: user("own", false, "ws-a", "Owner"), level: "manage", bound: true},
		"Editor user":        {header: user("edi", false, "ws-a", "Editor"), level: "write", bound: true},
		"Viewer user":        {header: user("vie", false, "ws-a", "Viewer"), level: "read", bound: true},
	}
	n := 0
	for rname, r := range matrixRoutes() {
		for kname, k := range kinds {
			for _, ws := range []string{"ws-a", "ws-c"} {
				allowed := rank(k.level) >= rank(r.access) && !(k.bound && r.access == "global") &&
					!(k.bound && r.wsBound && ws != "ws-a")
				a := newSClient(t).do(r.method, base+r.path(ws, gprs[ws]), r.body(ws, gprs[ws]), k.header()...)
				n++
				denied := a.status == http.StatusForbidden || a.status == http.StatusUnauthorized
				if allowed == denied {
					t.Errorf("%s as %s in %s: %d %.160s; want allowed=%v", rname, kname, ws, a.status, a.body, allowed)
				}
				if !allowed && a.status != http.StatusForbidden {
					t.Errorf("%s as %s in %s: %d, want 403", rname, kname, ws, a.status)
				}
			}
		}
		// No credential at all: 401 everywhere.
		if a := newSClient(t).do(r.method, base+r.path("ws-a", gprs["ws-a"]), r.body("ws-a", gprs["ws-a"])); a.status != 401 {
			t.Errorf("%s without a credential: %d", rname, a.status)
		}
	}
	t.Logf("%d requests checked", n)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
