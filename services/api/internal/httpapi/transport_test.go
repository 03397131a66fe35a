package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	tests := map[string]struct {
		prefix, path, want string
	}{
		"plain":                 {"", "/api/v1/gpr", "/api/v1/gpr"},
		"double slash":          {"", "//api/v1//gpr", "/api/v1/gpr"},
		"many slashes":          {"", "///api///v1/gpr", "/api/v1/gpr"},
		"trailing slash":        {"", "/api/v1/gpr/", "/api/v1/gpr"},
		"root":                  {"", "/", "/"},
		"prefix":                {"/egs", "/egs/api/v1/gpr", "/api/v1/gpr"},
		"prefix double slash":   {"/egs", "/egs//api/v1/gpr", "/api/v1/gpr"},
		"prefix given sloppily": {"egs/", "/egs//api/v1/gpr", "/api/v1/gpr"},
		"nested prefix":         {"/a/b", "/a//b/api/v1/gpr", "/api/v1/gpr"},
		"prefix only":           {"/egs", "/egs", "/"},
		"without prefix":        {"/egs", "/api/v1/gpr", "/api/v1/gpr"},
		"prefix is a word":      {"/egs", "/egsx/api", "/egsx/api"},
		"root prefix":           {"/", "//api/v1/gpr", "/api/v1/gpr"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got string
			h := Normalize(tc.prefix, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.Path }))
			r := httptest.NewRequest(http.MethodGet, "http://h"+tc.path, nil)
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Errorf("path %q with prefix %q routed as %q, want %q", tc.path, tc.prefix, got, tc.want)
			}
		})
	}
}

// TestSlashesAndPrefixNeverRedirect drives the whole stack: every spelling
// of the path reaches the route, with 200 and no redirect.
func TestSlashesAndPrefixNeverRedirect(t *testing.T) {
	f := newFixture(t, "/egs")
	for _, path := range []string{"/healthz", "//healthz", "/egs/healthz", "/egs//healthz", "/egs//healthz/", "/egs///readyz"} {
		t.Run(path, func(t *testing.T) {
			r := f.do(http.MethodGet, path, "", "")
			if r.status != http.StatusOK {
				t.Errorf("GET %s = %d %s, want 200", path, r.status, r.body)
			}
			if loc := r.header.Get("Location"); loc != "" {
				t.Errorf("GET %s redirected to %s", path, loc)
			}
		})
	}
	r := f.do(http.MethodGet, "/egs//api/v1/inventory/list", f.token("k1", "Owner", "", time.Minute), "")
	if r.status == http.StatusNotFound || r.status/100 == 3 {
		t.Errorf("prefixed API path = %d %s", r.status, r.body)
	}
}
