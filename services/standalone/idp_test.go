package standalone_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// opVersion is the zitadel/oidc release whose example OpenID provider the
// IdP tests log in at (scripts/idp-op pins it as a tool).
const opVersion = "v3.52.0"

// buildOP builds zitadel's example OpenID provider once per machine (cached
// beside Go's build cache) from the module proxy, through the tools module
// scripts/idp-op.
func buildOP(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "egs", "zitadel-example-op-"+opVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "idp-op")
	cmd := exec.Command("go", "build", "-o", bin+".tmp", "github.com/zitadel/oidc/v3/example/server")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build zitadel's example OpenID provider (scripts/idp-op): %v\n%s", err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startOP runs the example OP on a free port with the users of usersJSON
// and redirect, and returns its issuer URL.
func startOP(t *testing.T, redirect string, usersJSON string) string {
	t.Helper()
	bin := buildOP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	users := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(users, []byte(usersJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port, "REDIRECT_URI="+redirect, "USERS_FILE="+users)
	log := filepath.Join(t.TempDir(), "op.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = f.Close() })
	issuer := "http://localhost:" + port + "/"
	within(t, 10*time.Second, "the example OP answers discovery", func() bool {
		resp, err := http.Get(issuer + ".well-known/openid-configuration")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return issuer
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// loginAtOP follows the redirects from the edge's /login/idp/{provider}
// through the OP's login form (posting user and password) back to the
// edge's callback, and returns the callback's answer.
func loginAtOP(t *testing.T, b *sclient, start, user, password string) sanswer {
	t.Helper()
	next := start
	for hop := 0; hop < 12; hop++ {
		a := b.do("GET", next, nil)
		if a.status == http.StatusOK && strings.Contains(a.body, `action="/login/username"`) {
			m := hiddenID.FindStringSubmatch(a.body)
			if m == nil {
				t.Fatalf("login form without an id: %s", a.body)
			}
			base, _ := url.Parse(next)
			form := url.Values{"id": {m[1]}, "username": {user}, "password": {password}}.Encode()
			a = b.do("POST", base.Scheme+"://"+base.Host+"/login/username", form, "Content-Type", "application/x-www-form-urlencoded")
		}
		if a.status < 300 || a.status >= 400 {
			t.Fatalf("hop %d %s: %d %s", hop, next, a.status, a.body)
		}
		loc, err := url.Parse(a.header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := url.Parse(next)
		nu := cur.ResolveReference(loc)
		if strings.HasSuffix(cur.Path, "/login/idp/callback") {
			return a
		}
		next = nu.String()
	}
	t.Fatal("too many redirects")
	return sanswer{}
}

// TestIdPLogin is the browser-style acceptance test of an upstream IdP
// login: zitadel's example OpenID provider, built and run here, its HTML
// login form posted by a client with a cookie jar; the session that results
// is in Redis, on every edge, and sees only the workspaces the claim
// mapping grants.
func TestIdPLogin(t *testing.T) {
	var edge string
	st := newAuthStack(t, func(st *authStack) {
		edge = st.issuerURL()
		opUsers := `{
 "id1": {"ID":"id1","Username":"carol","Password":"verysecure","FirstName":"Carol","LastName":"C","Email":"carol@corp.example","EmailVerified":true,"PreferredLanguage":"en"},
 "id2": {"ID":"id2","Username":"dave","Password":"verysecure","FirstName":"Dave","LastName":"D","Email":"dave@corp.example","EmailVerified":true,"PreferredLanguage":"en"}
}`
		issuer := startOP(t, edge+"/login/idp/callback", opUsers)
		cfg := map[string]any{"providers": []map[string]any{{
			"id": "corp", "name": "Corporate SSO", "issuer": issuer, "clientId": "web", "clientSecret": "secret",
			"scopes": []string{"openid", "profile", "email"},
			"mappings": []map[string]any{
				{"claim": "email", "value": "carol@corp.example", "workspace": "ws-a", "role": "Editor"},
				{"claim": "email", "value": "carol@corp.example", "workspace": "ws-b", "role": "Viewer"},
			},
		}}}
		b, _ := json.Marshal(cfg)
		st.idpConfig = filepath.Join(t.TempDir(), "idp.json")
		if err := os.WriteFile(st.idpConfig, b, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	e0, e1 := st.edges[st.addEdge()], st.edges[st.addEdge()]
	for _, ws := range []string{"ws-a", "ws-b", "ws-c"} {
		mustStatus(t, "create "+ws, asAdmin(t, "POST", e0+"/api/v1/slice-workspace", map[string]any{"workspaceName": ws,
			"clusters": []string{"c1"}, "namespaces": []string{ws}, "username": "owner", "email": "owner@example.com"}), 200)
	}
	if p := mustStatus(t, "providers", newSClient(t).do("GET", e1+"/api/v1/session/providers", nil), 200); !strings.Contains(p.body, `{"id":"corp","name":"Corporate SSO"}`) {
		t.Fatalf("providers: %s", p.body)
	}

	b := newSClient(t)
	a := loginAtOP(t, b, e0+"/login/idp/corp", "carol", "verysecure")
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/" || !strings.Contains(strings.Join(a.header.Values("Set-Cookie"), ";"), "egs_session=") {
		t.Fatalf("callback: %d %v %s", a.status, a.header, a.body)
	}
	d := mustStatus(t, "idp session", b.session(e1), 200).data()
	if got := workspaceNames(d["workspaces"]); d["loginMethod"] != "idp:corp" || !slices.Equal(got, []string{"ws-a:Editor", "ws-b:Viewer"}) ||
		d["user"].(map[string]any)["username"] != "carol" || d["user"].(map[string]any)["email"] != "carol@corp.example" {
		t.Fatalf("idp session: %v", d)
	}
	l := mustStatus(t, "carol lists", b.do("GET", e0+"/api/v1/slice-workspace/list", nil), 200)
	if !strings.Contains(l.body, `"ws-a"`) || !strings.Contains(l.body, `"ws-b"`) || strings.Contains(l.body, `"ws-c"`) {
		t.Errorf("carol's list: %s", l.body)
	}
	mustStatus(t, "carol reads ws-c", b.do("GET", e0+"/api/v1/gpr-template-binding?gprTemplateBindingName=ws-c", nil), 403)
	u := mustStatus(t, "carol as a user", asAdmin(t, "GET", e0+"/api/v1/admin/users/carol", nil), 200).data()
	if u["source"] != "idp:corp" {
		t.Errorf("provisioned user %v", u)
	}
	// The session is in Redis (and only its hash names it).
	rdb := redis.NewClient(mustRedisOptions(t, st.redis.URL()))
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "egs:sess:*").Result()
	if err != nil || !slices.ContainsFunc(keys, func(k string) bool { return strings.Count(k, ":") == 2 }) {
		t.Fatalf("redis session keys %v (%v)", keys, err)
	}

	// A user no mapping names logs in with no workspace.
	b2 := newSClient(t)
	loginAtOP(t, b2, e1+"/login/idp/corp", "dave", "verysecure")
	if d := mustStatus(t, "dave", b2.session(e0), 200).data(); len(d["workspaces"].([]any)) != 0 {
		t.Errorf("dave sees %v", d["workspaces"])
	}
	mustStatus(t, "dave lists nothing", b2.do("GET", e0+"/api/v1/gpr-template-binding?gprTemplateBindingName=ws-a", nil), 403)

	// The callback is bound to the browser that started and is single use.
	b3, thief := newSClient(t), newSClient(t)
	start := b3.do("GET", e0+"/login/idp/corp", nil)
	authURL := start.header.Get("Location")
	cb := stopAtCallback(t, b3, authURL, "carol", "verysecure")
	a = thief.do("GET", cb, nil)
	if loc, _ := url.Parse(a.header.Get("Location")); a.status != http.StatusSeeOther || loc.Path != "/login" ||
		!strings.Contains(loc.Query().Get("error"), "another browser") {
		t.Errorf("callback in another browser: %d %q", a.status, a.header.Get("Location"))
	}
	a = b3.do("GET", cb, nil) // the state was spent by the first attempt
	if loc, _ := url.Parse(a.header.Get("Location")); loc.Path != "/login" || loc.Query().Get("error") == "" {
		t.Errorf("replayed callback: %d %q", a.status, a.header.Get("Location"))
	}
	a = newSClient(t).do("GET", e0+"/login/idp/nope", nil)
	if loc, _ := url.Parse(a.header.Get("Location")); loc.Path != "/login" || !strings.Contains(loc.Query().Get("error"), "Unknown identity provider") {
		t.Errorf("unknown provider: %d %q", a.status, a.header.Get("Location"))
	}
}

// stopAtCallback logs in at the OP and returns the edge callback URL
// without calling it.
func stopAtCallback(t *testing.T, b *sclient, authURL, user, password string) string {
	t.Helper()
	next := authURL
	for hop := 0; hop < 12; hop++ {
		cur, _ := url.Parse(next)
		if strings.HasSuffix(cur.Path, "/login/idp/callback") {
			return next
		}
		a := b.do("GET", next, nil)
		if a.status == http.StatusOK {
			m := hiddenID.FindStringSubmatch(a.body)
			if m == nil {
				t.Fatalf("no login form: %s", a.body)
			}
			form := url.Values{"id": {m[1]}, "username": {user}, "password": {password}}.Encode()
			a = b.do("POST", cur.Scheme+"://"+cur.Host+"/login/username", form, "Content-Type", "application/x-www-form-urlencoded")
		}
		loc, err := url.Parse(a.header.Get("Location"))
		if err != nil || a.status < 300 || a.status >= 400 {
			t.Fatalf("hop %d: %d %s", hop, a.status, a.body)
		}
		next = cur.ResolveReference(loc).String()
	}
	t.Fatal("too many redirects")
	return ""
}

func mustRedisOptions(t *testing.T, u string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
