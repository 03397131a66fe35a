package portal

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://edge"+path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPagesServeTheIndexWithTheBase(t *testing.T) {
	for name, tc := range map[string]struct{ prefix, base string }{
		"no prefix":        {"", `<base href="/">`},
		"prefix":           {"/egs", `<base href="/egs/">`},
		"sloppy prefix":    {"egs/", `<base href="/egs/">`},
		"escaped for html": {`/a"b`, `<base href="/a&#34;b/">`},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := New(tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"/", "/login", "/requests/gpr-1234abcd-0001", "/admin/users"} {
				w := serve(t, h, http.MethodGet, p, nil)
				if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
					t.Fatalf("GET %s = %d %s", p, w.Code, w.Header().Get("Content-Type"))
				}
				if !strings.Contains(w.Body.String(), tc.base) {
					t.Errorf("GET %s: page lacks %s", p, tc.base)
				}
				if w.Header().Get("Cache-Control") != "no-store" {
					t.Errorf("GET %s: Cache-Control %q, want no-store", p, w.Header().Get("Cache-Control"))
				}
			}
		})
	}
}

func TestAssets(t *testing.T) {
	h, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	for p, ctype := range map[string]string{
		"/assets/js/app.js":         "text/javascript; charset=utf-8",
		"/assets/js/pages/admin.js": "text/javascript; charset=utf-8",
		"/assets/css/portal.css":    "text/css; charset=utf-8",
		"/assets/favicon.svg":       "image/svg+xml",
	} {
		w := serve(t, h, http.MethodGet, p, nil)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != ctype {
			t.Errorf("GET %s = %d %q, want 200 %q", p, w.Code, w.Header().Get("Content-Type"), ctype)
		}
		etag := w.Header().Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", p)
			continue
		}
		if w := serve(t, h, http.MethodGet, p, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d, want 304", p, w.Code)
		}
	}
	if w := serve(t, h, http.MethodGet, "/assets/js/nope.js", nil); w.Code != http.StatusNotFound {
		t.Errorf("missing asset = %d, want 404", w.Code)
	}
	if w := serve(t, h, http.MethodPost, "/login", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /login = %d Allow %q, want 405 GET, HEAD", w.Code, w.Header().Get("Allow"))
	}
	if w := serve(t, h, http.MethodHead, "/assets/css/portal.css", nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD = %d with %d bytes, want 200 and no body", w.Code, w.Body.Len())
	}
}

// TestSecurityHeaders: every answer forbids other origins, framing and
// sniffing, so no page can load anything from elsewhere.
func TestSecurityHeaders(t *testing.T) {
	h, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/assets/js/app.js", "/assets/none"} {
		w := serve(t, h, http.MethodGet, p, nil)
		want := map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
			"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		}
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", p, k, got, v)
			}
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe-inline") || strings.Contains(ContentSecurityPolicy, "http") {
		t.Errorf("the policy allows inline code or another origin: %s", ContentSecurityPolicy)
	}
}

// TestAssetsAreSelfContained: no asset names another origin (fonts, scripts,
// images are all served here), and every module import and every asset the
// index page names exists.
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']?(?:https?:)?//|@import\s+url\(\s*["']?(?:https?:)?//|\bfrom\s+["'](?:https?:)?//|url\(\s*["']?(?:https?:)?//`)
	imports := regexp.MustCompile(`(?m)^import\s[^'"]*['"](\.[^'"]+)['"]`)
	refs := regexp.MustCompile(`(?:src|href)="(assets/[^"]+)"`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to another origin: %s", p, m)
		}
		dir := p[:strings.LastIndex(p, "/")]
		for _, m := range imports.FindAllSubmatch(b, -1) {
			target := cleanJoin(dir, string(m[1]))
			if _, err := fs.Stat(static, target); err != nil {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		if strings.HasSuffix(p, "index.html") {
			for _, m := range refs.FindAllSubmatch(b, -1) {
				if _, err := fs.Stat(static, "static/"+string(m[1])); err != nil {
					t.Errorf("index.html names %s, which is not embedded", m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cleanJoin(dir, rel string) string {
	parts := strings.Split(dir, "/")
	for _, s := range strings.Split(rel, "/") {
		switch s {
		case ".":
		case "..":
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/")
}

func TestOwns(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/login": true, "/observability": true, "/requests/new": true, "/requests/gpr-1": true,
		"/workspaces": true, "/workspaces/team-a": true, "/admin": true, "/admin/queue": true, "/assets/js/app.js": true,
		"/nope": false, "/login/direct": false, "/loginx": false, "/api/v1/gpr": false, "/metrics": false, "/observability/x": false,
	} {
		if got := Owns(p); got != want {
			t.Errorf("Owns(%q) = %v, want %v", p, got, want)
		}
	}
}
