package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
)

// idpCookie binds an upstream IdP login to the browser that started it.
const idpCookie = "egs_idp"

// registerIdP adds the upstream IdP login routes: /login/idp/{provider}
// sends the browser to the provider, /login/idp/callback comes back from it.
func (s *Server) registerIdP(e *echo.Echo) {
	e.GET("/login/idp/callback", s.idpCallback)
	e.GET("/login/idp/:provider", s.idpStart)
}

func (s *Server) idpStart(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	if s.sessions == nil {
		return s.loginFailed(c, "Portal sessions are not configured")
	}
	st, err := call[rpc.IdPStart](c, s, events.RPCAuthIdPStart, rpc.IdPStartRequest{Provider: c.Param("provider")})
	if err != nil {
		return s.loginFailed(c, s.loginMessage(c, err))
	}
	c.SetCookie(&http.Cookie{Name: idpCookie, Value: st.Binding, Path: s.path("/login/idp"), MaxAge: 600, HttpOnly: true,
		Secure: s.secure(c.Request()), SameSite: http.SameSiteLaxMode})
	return c.Redirect(http.StatusFound, st.URL)
}

func (s *Server) idpCallback(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	c.SetCookie(&http.Cookie{Name: idpCookie, Value: "", Path: s.path("/login/idp"), MaxAge: -1, HttpOnly: true,
		Secure: s.secure(c.Request()), SameSite: http.SameSiteLaxMode})
	if s.sessions == nil {
		return s.loginFailed(c, "Portal sessions are not configured")
	}
	if e := c.QueryParam("error"); e != "" {
		msg := "The identity provider refused the login (" + e + ")"
		if d := c.QueryParam("error_description"); d != "" && len(d) < 200 {
			msg = "The identity provider refused the login: " + d
		}
		return s.loginFailed(c, msg)
	}
	binding := ""
	if ck, err := c.Request().Cookie(idpCookie); err == nil {
		binding = ck.Value
	}
	l, err := call[rpc.Login](c, s, events.RPCAuthIdPFinish, rpc.IdPFinishRequest{State: c.QueryParam("state"),
		Code: c.QueryParam("code"), Binding: binding, Remote: c.RealIP()})
	if err != nil {
		return s.loginFailed(c, s.loginMessage(c, err))
	}
	if _, err := s.startSession(c, l); err != nil {
		return s.loginFailed(c, msgUnavailable)
	}
	return c.Redirect(http.StatusSeeOther, s.path("/"))
}

// loginMessage is what the login page shows for a failed login.
func (s *Server) loginMessage(c echo.Context, err error) string {
	var re *rpc.Error
	if errors.As(err, &re) && (re.Code == rpc.Unauthenticated || re.Code == rpc.NotFound || re.Code == rpc.BadRequest) {
		return re.Message
	}
	s.log.ErrorContext(c.Request().Context(), "portal login", logkey.Err, err)
	return msgUnavailable
}
