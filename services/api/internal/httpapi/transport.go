package httpapi

import (
	"net/http"
	"strings"
)

// Normalize returns a handler that collapses repeated slashes in the path,
// strips prefix (when the path starts with it) and a trailing slash, then
// calls next. It never redirects: EGS clients do not follow redirects and a
// base URL ending in "/" makes them send "//api/v1/...".
func Normalize(prefix string, next http.Handler) http.Handler {
	prefix = strings.TrimSuffix(collapse("/"+prefix), "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := collapse(r.URL.Path)
		if prefix != "" && (p == prefix || strings.HasPrefix(p, prefix+"/")) {
			p = p[len(prefix):]
		}
		if len(p) > 1 {
			p = strings.TrimSuffix(p, "/")
		}
		if p == "" {
			p = "/"
		}
		if p != r.URL.Path || r.URL.RawPath != "" {
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path, u.RawPath = p, ""
			r2.URL = &u
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// collapse replaces every run of slashes in p with one.
func collapse(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
