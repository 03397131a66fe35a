package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
	"github.com/open-egs/egs/services/api/internal/session"
)

// SessionView is the Session object of the portal session contract.
type SessionView struct {
	User        SessionUser         `json:"user"`
	Workspaces  []rpc.WorkspaceRole `json:"workspaces"`
	CSRFToken   string              `json:"csrfToken"`
	ExpiresAt   time.Time           `json:"expiresAt"`
	LoginMethod string              `json:"loginMethod"`
}

// SessionUser is the user of a session.
type SessionUser struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Admin    bool   `json:"admin"`
}

// Provider is an upstream identity provider offered on the login page.
type Provider struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

var errNoSessions = rpc.Errorf(rpc.Unavailable, "portal sessions are not configured")

// registerSessions adds the portal login and session routes.
func (s *Server) registerSessions(e *echo.Echo, v1 *echo.Group) {
	v1.POST("/session/login", s.sessionLogin)
	v1.GET("/session", s.sessionInfo)
	v1.POST("/session/logout", s.sessionLogout)
	v1.POST("/session/logout-all", s.sessionLogoutAll)
	v1.GET("/session/providers", s.sessionProviders)
	e.GET("/login/direct", s.directLogin)
	s.registerIdP(e)
}

// fail answers status with code and message as they are (the generic
// classify would replace an UNAUTHENTICATED message with "Unauthenticated").
func fail(c echo.Context, status int, code rpc.Code, msg string) error {
	return writeEnvelope(c, status, Envelope{StatusCode: status, Status: string(code), Message: msg,
		Error: &ErrorBody{ErrorKey: string(code), Message: msg}})
}

// created answers 201 with the success envelope around data.
func created(c echo.Context, data any) error {
	return writeEnvelope(c, http.StatusCreated, Envelope{StatusCode: http.StatusCreated, Status: "CREATED",
		Message: "Created", Data: data})
}

// sessionLogin is POST /api/v1/session/login {"token"}: a user access token
// or an Owner API key for a portal session.
func (s *Server) sessionLogin(c echo.Context) error {
	if s.sessions == nil {
		return errNoSessions
	}
	var b struct {
		Token *string `json:"token"`
	}
	if err := s.decode(c, &b); err != nil {
		return err
	}
	tok := strings.TrimSpace(egsStr(b.Token))
	if tok == "" {
		return rpc.Errorf(rpc.BadRequest, "token is required")
	}
	l, err := call[rpc.Login](c, s, events.RPCAuthLogin, rpc.LoginRequest{Token: tok, Remote: c.RealIP()})
	if err != nil {
		if re := (*rpc.Error)(nil); errors.As(err, &re) && re.Code == rpc.Unauthenticated {
			return fail(c, http.StatusUnauthorized, rpc.Unauthenticated, re.Message)
		}
		return err
	}
	sess, err := s.startSession(c, l)
	if err != nil {
		return err
	}
	view, err := s.sessionView(c, sess)
	if err != nil {
		return err
	}
	return ok(c, view)
}

// decodeBody decodes a request body as every route does (egs.Decode).
func decodeBody(b []byte, v any) error { return egs.Decode(b, v) }

func egsStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// startSession stores a session for login l, sets the cookie and audits it.
func (s *Server) startSession(c echo.Context, l rpc.Login) (session.Session, error) {
	rec := session.Session{UserKey: l.User.Username, Username: l.User.Username, Method: l.Method, Origin: l.Origin,
		Caller: l.Caller}
	if l.Caller != nil {
		rec.UserKey = "key:" + l.Caller.Subject
	}
	id, sess, err := s.sessions.Create(c.Request().Context(), rec, l.ExpiresAt)
	if errors.Is(err, session.ErrExpired) {
		return session.Session{}, rpc.Errorf(rpc.Unauthenticated, "The credential has expired")
	}
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "create session", logkey.Err, err)
		return session.Session{}, rpc.Errorf(rpc.Unavailable, "session store unavailable")
	}
	s.setCookie(c, id, sess.ExpiresAt)
	s.audit.Publish(c.Request().Context(), events.AuthFamilySession, sessionAuditID(sess), events.AuthCreated,
		events.AuthAudit{User: sess.Username, Method: sess.Method, Target: sess.ShortHandle(), Remote: c.RealIP(),
			Until: sess.ExpiresAt})
	return sess, nil
}

// sessionAuditID is the subject token of a session's events: the user's id,
// or the key id of an API token session.
func sessionAuditID(sess session.Session) string {
	if sess.Caller != nil && events.ValidToken(sess.Caller.Subject) {
		return sess.Caller.Subject
	}
	return events.UserID(sess.Username)
}

// secure reports whether the request came over TLS (directly or as a proxy
// in front of the edge says).
func (s *Server) secure(r *http.Request) bool {
	return s.secureCookie || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *Server) setCookie(c echo.Context, id string, until time.Time) {
	c.SetCookie(&http.Cookie{Name: CookieName, Value: id, Path: "/", Expires: until, HttpOnly: true,
		Secure: s.secure(c.Request()), SameSite: http.SameSiteLaxMode})
}

func (s *Server) clearCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.secure(c.Request()), SameSite: http.SameSiteLaxMode})
}

// sessionView builds the Session object: the user as they are now, their
// workspaces (every workspace, as Owner, for admins and Owner API tokens).
func (s *Server) sessionView(c echo.Context, sess session.Session) (SessionView, error) {
	v := SessionView{CSRFToken: sess.CSRF, ExpiresAt: sess.ExpiresAtFor(s.sessions.Idle()).UTC().Truncate(time.Second),
		LoginMethod: sess.Method, User: SessionUser{Username: sess.Username}, Workspaces: []rpc.WorkspaceRole{}}
	all := sess.Caller != nil
	if sess.Caller == nil {
		u, err := s.users.Get(c.Request().Context(), sess.Username)
		if rpc.CodeOf(err) == rpc.NotFound {
			return SessionView{}, errUnauthenticated
		}
		if err != nil {
			return SessionView{}, err
		}
		v.User = SessionUser{Username: u.Username, Email: u.Email, Admin: u.Admin}
		v.Workspaces = append(v.Workspaces, u.Workspaces...)
		all = u.Admin
	}
	if all {
		l, err := call[rpc.WorkspaceList](c, s, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{})
		if err != nil {
			return SessionView{}, err
		}
		v.Workspaces = v.Workspaces[:0]
		for _, w := range l.Workspaces {
			v.Workspaces = append(v.Workspaces, rpc.WorkspaceRole{Name: w.Name, Role: egs.RoleOwner})
		}
	}
	slices.SortFunc(v.Workspaces, func(a, b rpc.WorkspaceRole) int { return strings.Compare(a.Name, b.Name) })
	return v, nil
}

// cookieSession returns the session of the request's cookie, or
// UNAUTHENTICATED.
func (s *Server) cookieSession(c echo.Context) (session.Session, string, error) {
	if s.sessions == nil {
		return session.Session{}, "", errNoSessions
	}
	ck, err := c.Request().Cookie(CookieName)
	if err != nil {
		return session.Session{}, "", errUnauthenticated
	}
	sess, err := s.sessions.Get(c.Request().Context(), ck.Value)
	if errors.Is(err, session.ErrNotFound) {
		return session.Session{}, "", errUnauthenticated
	}
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "read session", logkey.Err, err)
		return session.Session{}, "", rpc.Errorf(rpc.Unavailable, "session store unavailable")
	}
	return sess, ck.Value, nil
}

// sessionInfo is GET /api/v1/session.
func (s *Server) sessionInfo(c echo.Context) error {
	sess, _, err := s.cookieSession(c)
	if err != nil {
		return err
	}
	if sess.Caller != nil && s.auth.revoked(sess.Caller.Subject) {
		return errUnauthenticated
	}
	view, err := s.sessionView(c, sess)
	if err != nil {
		return err
	}
	return ok(c, view)
}

// sessionLogout is POST /api/v1/session/logout: the session is deleted and
// the cookie cleared. Without a live session there is nothing to do: 200.
func (s *Server) sessionLogout(c echo.Context) error {
	sess, id, err := s.cookieSession(c)
	if rpc.CodeOf(err) == rpc.Unauthenticated {
		s.clearCookie(c)
		return ok(c, empty)
	}
	if err != nil {
		return err
	}
	if !sess.CheckCSRF(c.Request().Header.Get(HeaderCSRF)) {
		return errCSRF
	}
	if _, err := s.sessions.Delete(c.Request().Context(), id); err != nil && !errors.Is(err, session.ErrNotFound) {
		s.log.ErrorContext(c.Request().Context(), "delete session", logkey.Err, err)
		return rpc.Errorf(rpc.Unavailable, "session store unavailable")
	}
	s.clearCookie(c)
	s.audit.Publish(c.Request().Context(), events.AuthFamilySession, sessionAuditID(sess), events.AuthLoggedOut,
		events.AuthAudit{User: sess.Username, Method: sess.Method, Target: sess.ShortHandle(), Remote: c.RealIP()})
	return ok(c, empty)
}

// sessionLogoutAll is POST /api/v1/session/logout-all: every session of the
// caller's user ends (the caller's own included).
func (s *Server) sessionLogoutAll(c echo.Context) error {
	if s.sessions == nil {
		return errNoSessions
	}
	p, err := s.authenticate(c)
	if err != nil {
		return err
	}
	key := ""
	switch {
	case p.isUser():
		key = p.user.Username
	case p.session != nil:
		key = p.session.UserKey
	default:
		return rpc.Errorf(rpc.BadRequest, "only a portal user has sessions")
	}
	n, err := s.sessions.DeleteUser(c.Request().Context(), key)
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "delete sessions", logkey.Err, err)
		return rpc.Errorf(rpc.Unavailable, "session store unavailable")
	}
	if p.session != nil {
		s.clearCookie(c)
	}
	id := events.UserID(key)
	if p.session != nil {
		id = sessionAuditID(*p.session)
	}
	s.audit.Publish(c.Request().Context(), events.AuthFamilySession, id, events.AuthRevoked,
		events.AuthAudit{Actor: p.caller.Subject, User: strings.TrimPrefix(key, "key:"), Reason: "logout-all",
			Remote: c.RealIP(), Detail: "sessions=" + strconv.Itoa(n)})
	return ok(c, map[string]int{"revoked": n})
}

// sessionProviders is GET /api/v1/session/providers: the upstream IdPs
// offered on the login page (no authentication needed).
func (s *Server) sessionProviders(c echo.Context) error {
	l, err := call[[]Provider](c, s, events.RPCAuthProviders, rpc.Empty{})
	if err != nil {
		return err
	}
	if l == nil {
		l = []Provider{}
	}
	return ok(c, l)
}

// directLogin is GET /login/direct?code=...: a single-use login link. It
// answers with redirects, as a browser follows it.
func (s *Server) directLogin(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	if s.sessions == nil {
		return s.loginFailed(c, "Portal sessions are not configured")
	}
	code := c.QueryParam("code")
	if code == "" {
		return s.loginFailed(c, "Login link is invalid or was already used")
	}
	l, err := call[rpc.Login](c, s, events.RPCAuthLogin, rpc.LoginRequest{Code: code, Remote: c.RealIP()})
	if err != nil {
		msg := msgUnavailable
		if re := (*rpc.Error)(nil); errors.As(err, &re) && (re.Code == rpc.Unauthenticated || re.Code == rpc.BadRequest) {
			msg = re.Message
		} else {
			s.log.ErrorContext(c.Request().Context(), "direct login", logkey.Err, err)
		}
		return s.loginFailed(c, msg)
	}
	if _, err := s.startSession(c, l); err != nil {
		msg := msgUnavailable
		if re := (*rpc.Error)(nil); errors.As(err, &re) && re.Code == rpc.Unauthenticated {
			msg = re.Message
		}
		return s.loginFailed(c, msg)
	}
	return c.Redirect(http.StatusSeeOther, s.path("/"))
}

// loginFailed sends the browser to the login page with the message.
func (s *Server) loginFailed(c echo.Context, msg string) error {
	return c.Redirect(http.StatusSeeOther, s.path("/login")+"?error="+url.QueryEscape(msg))
}

// path prefixes p with the configured path prefix.
func (s *Server) path(p string) string {
	if s.prefix == "" {
		return p
	}
	if p == "/" {
		return s.prefix + "/"
	}
	return s.prefix + p
}
