package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
	"github.com/open-egs/egs/services/api/internal/session"
)

// CookieName is the portal session cookie.
const CookieName = "egs_session"

// HeaderCSRF carries the session's CSRF token on state-changing requests
// authenticated by the cookie.
const HeaderCSRF = "X-CSRF-Token"

// Global is the access of routes that act on the whole platform (workspaces,
// API keys, templates, users): the admin, an Owner API key, or an admin user;
// never a user whose roles are per workspace.
const Global Access = Manage + 1

// msgCSRF is the message of a cookie-authenticated write without its token.
const msgCSRF = "CSRF token missing or invalid"

var errCSRF = rpc.Errorf(rpc.Forbidden, msgCSRF)

// principal is who a request comes from: a bearer token's caller (the
// admin token, an API key's token), or a user (through a portal session or
// a user token) whose roles are read anew on each request, or an API token
// session (a fixed Owner caller).
type principal struct {
	caller  rpc.Caller       // the caller of a token or API token session; Subject only for users
	user    *rpc.User        // set for users
	session *session.Session // set when the cookie authenticated the request
	// credential names the token or session for per-credential limits: a
	// digest, never the secret.
	credential string
}

// isUser reports whether the principal is a user with roles per workspace.
func (p principal) isUser() bool { return p.user != nil }

// UserSubject is the caller subject of a user.
func UserSubject(username string) string { return rpc.UserSubjectPrefix + username }

// roleRank orders roles: a higher rank grants everything a lower one does.
func roleRank(role string) int {
	switch role {
	case egs.RoleViewer:
		return 1
	case egs.RoleEditor:
		return 2
	case egs.RoleOwner:
		return 3
	}
	return 0
}

// callerFor returns the caller a route of access a sees, or FORBIDDEN. For
// a user it is the admin caller (admin users), or the caller confined to the
// workspaces whose role grants a (rpc.Caller explains Workspaces).
func (p principal) callerFor(a Access) (rpc.Caller, error) {
	if !p.isUser() {
		if !permits(p.caller, a) || a == Global && p.caller.Workspace != "" {
			return rpc.Caller{}, errForbidden
		}
		return p.caller, nil
	}
	subject := UserSubject(p.user.Username)
	if p.user.Admin {
		return rpc.Caller{Subject: subject, Role: egs.RoleAdmin}, nil
	}
	if a == Global {
		return rpc.Caller{}, errForbidden
	}
	var (
		eligible []string
		least    string
	)
	for _, w := range p.user.Workspaces {
		if !permits(rpc.Caller{Role: w.Role}, a) {
			continue
		}
		eligible = append(eligible, w.Name)
		if least == "" || roleRank(w.Role) < roleRank(least) {
			least = w.Role
		}
	}
	if len(eligible) == 0 {
		return rpc.Caller{}, errForbidden
	}
	slices.Sort(eligible)
	c := rpc.Caller{Subject: subject, Role: least, Workspace: eligible[0]}
	if len(eligible) > 1 {
		c.Workspaces = eligible
	}
	return c, nil
}

// narrow confines c to workspace ws when c spans several (a user), so that
// a service that reads only Caller.Workspace sees ws; other callers are
// returned as they are.
func narrow(c rpc.Caller, ws string) rpc.Caller {
	if len(c.Workspaces) > 0 && ws != "" && c.Allows(ws) {
		c.Workspace, c.Workspaces = ws, nil
	}
	return c
}

// scope is the workspace a list request is confined to: the caller's one
// workspace, or "" for callers of every workspace and for users of several
// (whose lists the edge filters with Caller.Allows).
func scope(c rpc.Caller) string {
	if len(c.Workspaces) > 0 {
		return ""
	}
	return c.Workspace
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalOf returns the principal the auth middleware stored in ctx.
func principalOf(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey{}).(principal)
	return p, ok
}

// safeMethod reports whether m changes nothing (no CSRF token needed).
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds the principal of a request: the bearer token when an
// Authorization header is present, else the session cookie (a write then
// needs the session's CSRF token).
func (s *Server) authenticate(c echo.Context) (principal, error) {
	r := c.Request()
	if h := r.Header.Get(echo.HeaderAuthorization); h != "" || s.sessions == nil {
		raw := bearer(h)
		caller, err := s.auth.Authenticate(r.Context(), raw)
		if err != nil {
			return principal{}, err
		}
		sum := sha256.Sum256([]byte(raw))
		cred := "t:" + hex.EncodeToString(sum[:16])
		if name, ok := strings.CutPrefix(caller.Subject, rpc.UserSubjectPrefix); ok {
			p, err := s.userPrincipal(r.Context(), name, nil)
			p.credential = cred
			return p, err
		}
		return principal{caller: caller, credential: cred}, nil
	}
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return principal{}, errUnauthenticated
	}
	sess, err := s.sessions.Get(r.Context(), ck.Value)
	if errors.Is(err, session.ErrNotFound) {
		return principal{}, errUnauthenticated
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "read session", logkey.Err, err)
		return principal{}, rpc.Errorf(rpc.Unavailable, "session store unavailable")
	}
	if !safeMethod(r.Method) && !sess.CheckCSRF(r.Header.Get(HeaderCSRF)) {
		return principal{}, errCSRF
	}
	if sess.Caller != nil {
		if s.auth.revoked(sess.Caller.Subject) {
			return principal{}, errUnauthenticated
		}
		return principal{caller: *sess.Caller, session: &sess, credential: "s:" + sess.ShortHandle()}, nil
	}
	p, err := s.userPrincipal(r.Context(), sess.Username, &sess)
	p.credential = "s:" + sess.ShortHandle()
	return p, err
}

// userPrincipal reads the user anew (from the edge's short cache): a user
// deleted or changed since the session began is seen as they are now.
func (s *Server) userPrincipal(ctx context.Context, username string, sess *session.Session) (principal, error) {
	if s.users == nil {
		return principal{}, errUnauthenticated
	}
	u, err := s.users.Get(ctx, username)
	if rpc.CodeOf(err) == rpc.NotFound {
		return principal{}, errUnauthenticated
	}
	if err != nil {
		return principal{}, err
	}
	return principal{caller: rpc.Caller{Subject: UserSubject(u.Username)}, user: &u, session: sess}, nil
}
