package httpapi

import (
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/duration"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
)

// registerAdminUsers adds the admin routes of users, their access tokens,
// direct login links and sessions (admin, an Owner API key or an admin
// user: access Global).
func (s *Server) registerAdminUsers(v1 *echo.Group) {
	g := v1.Group("/admin/users", s.require(Global))
	g.POST("", s.adminCreateUser)
	g.GET("", s.adminListUsers)
	g.GET("/:username", s.adminGetUser)
	g.PUT("/:username", s.adminUpdateUser)
	g.DELETE("/:username", s.adminDeleteUser)
	g.POST("/:username/access-tokens", s.adminCreateToken)
	g.GET("/:username/access-tokens", s.adminListTokens)
	g.DELETE("/:username/access-tokens/:id", s.adminRevokeToken)
	g.POST("/:username/direct-login", s.adminDirectLogin)
	g.POST("/:username/revoke-sessions", s.adminRevokeSessions)
}

// UserBody is the body of POST and PUT /api/v1/admin/users.
type UserBody struct {
	Username   *string             `json:"username"`
	Email      *string             `json:"email"`
	Admin      *bool               `json:"admin"`
	Workspaces []rpc.WorkspaceRole `json:"workspaces"`
}

func (b UserBody) spec(actor, username string) rpc.UserSpec {
	sp := rpc.UserSpec{Actor: actor, Username: username, Email: egsStr(b.Email), Workspaces: b.Workspaces}
	if b.Admin != nil {
		sp.Admin = *b.Admin
	}
	if sp.Workspaces == nil {
		sp.Workspaces = []rpc.WorkspaceRole{}
	}
	return sp
}

func actor(c echo.Context) string { return callerOf(c.Request().Context()).Subject }

func (s *Server) adminCreateUser(c echo.Context) error {
	var b UserBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	if egsStr(b.Username) == "" {
		return rpc.Errorf(rpc.Invalid, "%q is required", "username")
	}
	u, err := call[rpc.User](c, s, events.RPCAuthUserCreate, b.spec(actor(c), egsStr(b.Username)))
	if err != nil {
		return err
	}
	return created(c, u)
}

func (s *Server) adminListUsers(c echo.Context) error {
	l, err := call[rpc.UserList](c, s, events.RPCAuthUserList, rpc.Empty{})
	if err != nil {
		return err
	}
	if l.Users == nil {
		l.Users = []rpc.User{}
	}
	return ok(c, l.Users)
}

// username reads the {username} path parameter (unescaped).
func username(c echo.Context) (string, error) {
	u, err := url.PathUnescape(c.Param("username"))
	if err != nil || u == "" {
		return "", rpc.Errorf(rpc.BadRequest, "malformed username")
	}
	return u, nil
}

func (s *Server) adminGetUser(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	u, err := call[rpc.User](c, s, events.RPCAuthUserGet, rpc.UserRef{Username: name})
	if err != nil {
		return err
	}
	return ok(c, u)
}

func (s *Server) adminUpdateUser(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	var b UserBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	if n := egsStr(b.Username); n != "" && n != name {
		return rpc.Errorf(rpc.Invalid, "the username of a user cannot change")
	}
	u, err := call[rpc.User](c, s, events.RPCAuthUserUpdate, b.spec(actor(c), name))
	if err != nil {
		return err
	}
	if s.users != nil {
		s.users.Invalidate(name) // this replica at once; the others on the event
	}
	return ok(c, u)
}

func (s *Server) adminDeleteUser(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCAuthUserDelete, rpc.UserRef{Actor: actor(c), Username: name}); err != nil {
		return err
	}
	if s.users != nil {
		s.users.Invalidate(name)
	}
	if s.sessions != nil {
		if _, err := s.sessions.DeleteUser(c.Request().Context(), name); err != nil {
			s.log.ErrorContext(c.Request().Context(), "delete the sessions of a deleted user", logkey.Err, err)
		}
	}
	return ok(c, empty)
}

func (s *Server) adminCreateToken(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	var b struct {
		Validity *string `json:"validity"`
	}
	if hasBody(c) {
		if err := s.decode(c, &b); err != nil {
			return err
		}
	}
	t, err := call[rpc.AccessTokenCreated](c, s, events.RPCAuthTokenCreate,
		rpc.CreateAccessTokenRequest{Actor: actor(c), Username: name, Validity: egsStr(b.Validity)})
	if err != nil {
		return err
	}
	return created(c, t)
}

// hasBody reports whether the request has a body; routes whose body is
// optional accept none.
func hasBody(c echo.Context) bool {
	return c.Request().ContentLength != 0 // -1: chunked
}

func (s *Server) adminListTokens(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	l, err := call[rpc.AccessTokenList](c, s, events.RPCAuthTokenList, rpc.UserRef{Username: name})
	if err != nil {
		return err
	}
	if l.Tokens == nil {
		l.Tokens = []rpc.AccessTokenInfo{}
	}
	return ok(c, l.Tokens)
}

func (s *Server) adminRevokeToken(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	ref := rpc.AccessTokenRef{Actor: actor(c), Username: name, ID: c.Param("id")}
	if _, err := call[rpc.Empty](c, s, events.RPCAuthTokenRevoke, ref); err != nil {
		return err
	}
	if s.sessions != nil { // this replica at once; every replica on the event
		if _, err := s.sessions.DeleteOrigin(c.Request().Context(), ref.ID); err != nil {
			s.log.ErrorContext(c.Request().Context(), "delete the sessions of a revoked token", logkey.Err, err)
		}
	}
	return ok(c, empty)
}

// DirectLoginView is the data of POST .../direct-login.
type DirectLoginView struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (s *Server) adminDirectLogin(c echo.Context) error {
	name, err := username(c)
	if err != nil {
		return err
	}
	var b struct {
		TTL *string `json:"ttl"`
	}
	if hasBody(c) {
		if err := s.decode(c, &b); err != nil {
			return err
		}
	}
	var ttl time.Duration
	if v := egsStr(b.TTL); v != "" {
		if ttl, err = duration.Parse(v); err != nil {
			return rpc.Errorf(rpc.Invalid, "%q: %v", "ttl", err)
		}
	}
	d, err := call[rpc.DirectLoginCreated](c, s, events.RPCAuthDirectCreate,
		rpc.DirectLoginRequest{Actor: actor(c), Username: name, TTL: ttl})
	if err != nil {
		return err
	}
	return created(c, DirectLoginView{URL: s.path("/login/direct") + "?code=" + url.QueryEscape(d.Code), ExpiresAt: d.ExpiresAt})
}

func (s *Server) adminRevokeSessions(c echo.Context) error {
	if s.sessions == nil {
		return errNoSessions
	}
	name, err := username(c)
	if err != nil {
		return err
	}
	n, err := s.sessions.DeleteUser(c.Request().Context(), name)
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "delete sessions", logkey.Err, err)
		return rpc.Errorf(rpc.Unavailable, "session store unavailable")
	}
	s.audit.Publish(c.Request().Context(), events.AuthFamilySession, events.UserID(name), events.AuthRevoked,
		events.AuthAudit{Actor: actor(c), User: name, Reason: "admin", Remote: c.RealIP(), Detail: "sessions=" + strconv.Itoa(n)})
	return ok(c, map[string]int{"revoked": n})
}
