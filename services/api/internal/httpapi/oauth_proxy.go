package httpapi

import (
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/labstack/echo/v4"
)

// Headers by which the edge tells the auth service's issuer who the portal
// user of an authorization request is; the issuer believes them only with
// the shared edge secret. Both are stripped from what clients send.
const (
	HeaderPortalUser = "X-Egs-Portal-User"
	HeaderEdgeSecret = "X-Egs-Edge-Secret"
)

// OAuthUpstream returns a handler that forwards the issuer's routes to the
// auth service's issuer listener (auth -oauth.http-addr) when auth runs
// apart from the edge.
func OAuthUpstream(target *url.URL) http.Handler {
	p := httputil.NewSingleHostReverseProxy(target)
	base := p.Director
	p.Director = func(r *http.Request) {
		base(r)
		r.Host = target.Host
	}
	return p
}

// registerOAuth mounts the OAuth2/OpenID Connect issuer (Options.OAuth, the
// handler itself in the standalone process or OAuthUpstream) at
// /.well-known/openid-configuration, /.well-known/jwks.json and /oauth2/*.
func (s *Server) registerOAuth(e *echo.Echo) {
	if s.oauth == nil {
		return
	}
	e.Any("/.well-known/openid-configuration", s.oauthPass)
	e.Any("/.well-known/jwks.json", s.oauthPass)
	e.Any("/oauth2/*", s.oauthPass)
}

// oauthPass hands a request to the issuer. The authorization endpoint needs
// a portal user: with a user session it is vouched for in HeaderPortalUser;
// without one the browser is sent to the portal's login page, which comes
// back to the same authorization request (?next=) once logged in.
func (s *Server) oauthPass(c echo.Context) error {
	r := c.Request()
	r.Header.Del(HeaderPortalUser)
	r.Header.Del(HeaderEdgeSecret)
	if r.URL.Path == "/oauth2/auth" {
		user := ""
		if sess, _, err := s.cookieSession(c); err == nil && sess.Caller == nil {
			user = sess.Username
		}
		if user == "" {
			next := s.path(r.URL.Path)
			if r.URL.RawQuery != "" {
				next += "?" + r.URL.RawQuery
			}
			return c.Redirect(http.StatusSeeOther, s.path("/login")+"?next="+url.QueryEscape(next))
		}
		r.Header.Set(HeaderPortalUser, user)
		r.Header.Set(HeaderEdgeSecret, s.edgeSecret)
	}
	s.oauth.ServeHTTP(c.Response(), r)
	return nil
}
