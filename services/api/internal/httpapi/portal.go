package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/services/api/internal/portal"
)

// apiPrefixes are the paths the portal never serves, whether or not a route
// is registered under them yet: the REST API, metrics, probes and the login
// and OAuth2 endpoints the browser is sent to.
var apiPrefixes = []string{"/api", "/metrics", "/healthz", "/readyz", "/login/direct", "/login/idp", "/oauth2", "/.well-known"}

// withPortal sends GET and HEAD requests for the portal's pages and assets
// (portal.Owns) to the portal unless an API route owns the path, and
// everything else to the API. The paths the API owns are apiPrefixes plus the
// static part of every route registered on api (read once, so call it after
// the last route is added).
func withPortal(api *echo.Echo, site http.Handler) http.Handler {
	owned := append([]string{}, apiPrefixes...)
	for _, rt := range api.Routes() {
		p := rt.Path
		if i := strings.IndexAny(p, ":*"); i >= 0 {
			p = p[:i]
		}
		if p = strings.TrimSuffix(p, "/"); p != "" {
			owned = append(owned, p)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && portal.Owns(r.URL.Path) && !ownedBy(owned, r.URL.Path) {
			site.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// ownedBy reports whether p is one of prefixes or below one of them.
func ownedBy(prefixes []string, p string) bool {
	for _, x := range prefixes {
		if p == x || strings.HasPrefix(p, x+"/") {
			return true
		}
	}
	return false
}

// mustPortal builds the portal handler; its assets are embedded, so a
// failure is a programming error that every test of the edge would catch.
func mustPortal(prefix string) http.Handler {
	h, err := portal.New(prefix)
	if err != nil {
		panic(err)
	}
	return h
}
