package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/ratelimit"
	"github.com/open-egs/egs/services/api/internal/session"
)

// Options configure a Server.
type Options struct {
	NATS         *nats.Conn
	Log          *slog.Logger
	Auth         *Authenticator
	Prefix       string           // path prefix stripped before routing, e.g. "/egs"
	RPCTimeout   time.Duration    // deadline of each NATS request
	MaxBodyBytes int64            // larger bodies get 413
	Ready        func() bool      // /readyz answers 503 while it returns false
	Now          func() time.Time // clock for key validity checks
	// Sessions keeps portal sessions; nil disables cookie authentication and
	// the session routes (they answer 503).
	Sessions *session.Store
	// Users reads users for their sessions and tokens; nil: no user logins.
	Users *UserDirectory
	// Audit publishes the edge's audit events; nil publishes none.
	Audit *Auditor
	// SecureCookie sets Secure on the session cookie even when the edge
	// cannot tell that the client used TLS.
	SecureCookie bool
	// OAuth, when set, serves the OAuth2/OIDC issuer's endpoints
	// (/.well-known/openid-configuration, /oauth2/*) on the edge's address.
	OAuth http.Handler
	// OAuthEdgeSecret vouches for the portal user of an authorization
	// request to the issuer (auth -oauth.edge-secret).
	OAuthEdgeSecret string
	// RateLimit limits the requests of each token and session (in Redis,
	// shared by every replica); nil: no limit.
	RateLimit *ratelimit.Limiter
}

// Server serves the EGS v1 API. It is an http.Handler and safe for
// concurrent use.
type Server struct {
	nc      *nats.Conn
	log     *slog.Logger
	auth    *Authenticator
	timeout time.Duration
	maxBody int64
	ready   func() bool
	now     func() time.Time
	echo    *echo.Echo
	handler http.Handler
	streams *streams // open event streams, ended at shutdown (sse.go)

	sessions     *session.Store
	users        *UserDirectory
	audit        *Auditor
	secureCookie bool
	prefix       string
	oauth        http.Handler
	edgeSecret   string
	limiter      *ratelimit.Limiter
}

// New builds the server and its routes.
func New(o Options) *Server {
	s := &Server{nc: o.NATS, log: o.Log, auth: o.Auth, timeout: o.RPCTimeout, maxBody: o.MaxBodyBytes, ready: o.Ready, now: o.Now,
		streams: newStreams(), sessions: o.Sessions, users: o.Users, audit: o.Audit, secureCookie: o.SecureCookie,
		oauth: o.OAuth, edgeSecret: o.OAuthEdgeSecret, limiter: o.RateLimit, prefix: strings.TrimSuffix(collapse("/"+o.Prefix), "/")}
	if s.timeout <= 0 {
		s.timeout = rpc.DefaultTimeout
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	if s.now == nil {
		s.now = time.Now
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.recover)

	e.GET("/healthz", func(c echo.Context) error { return ok(c, struct{}{}) })
	e.GET("/readyz", s.readyz)

	v1 := e.Group("/api/v1")
	v1.POST("/auth", s.exchange)

	v1.POST("/api-key", s.createKey, s.require(Global))
	v1.DELETE("/api-key", s.deleteKey, s.require(Global))
	v1.GET("/api-key/list", s.listKeys, s.require(Global))

	v1.POST("/slice-workspace", s.createWorkspace, s.require(Global))
	v1.DELETE("/slice-workspace", s.deleteWorkspace, s.require(Global))
	v1.GET("/slice-workspace/list", s.listWorkspaces, s.require(Read))
	v1.POST("/slice-workspace/kube-config", s.kubeConfig, s.require(Write))

	v1.GET("/inventory/list", s.inventory, s.require(Read))
	v1.GET("/inventory", s.workspaceInventory, s.require(Read))

	v1.POST("/gpr", s.createGPR, s.require(Write))
	v1.GET("/gpr", s.getGPR, s.require(Read))
	v1.PUT("/gpr", s.updateGPR, s.require(Write))
	v1.DELETE("/gpr", s.deleteGPR, s.require(Write))
	v1.GET("/gpr/list", s.listGPRs, s.require(Read))
	v1.POST("/gpr/waittime", s.waitTime, s.require(Write))
	v1.POST("/gpr/approve", s.approveGPR, s.require(Manage))
	v1.POST("/gpr/move", s.moveGPR, s.require(Manage))
	v1.POST("/gpr/reject", s.rejectGPR, s.require(Manage))

	v1.POST("/gpr-template", s.createTemplate, s.require(Global))
	v1.GET("/gpr-template", s.getTemplate, s.require(Read))
	v1.PUT("/gpr-template", s.updateTemplate, s.require(Global))
	v1.DELETE("/gpr-template", s.deleteTemplate, s.require(Global))
	v1.GET("/gpr-template/list", s.listTemplates, s.require(Read))

	v1.POST("/gpr-template-binding", s.createBinding, s.require(Write))
	v1.GET("/gpr-template-binding", s.getBinding, s.require(Read))
	v1.PUT("/gpr-template-binding", s.updateBinding, s.require(Write))
	v1.DELETE("/gpr-template-binding", s.deleteBinding, s.require(Write))
	v1.GET("/gpr-template-binding/list", s.listBindings, s.require(Read))

	v1.GET("/workspace-policy", s.getPolicy, s.require(Read))
	v1.PUT("/workspace-policy", s.setPolicy, s.require(Global))
	s.registerTelemetry(e, v1)
	s.registerSessions(e, v1)
	s.registerAdminUsers(v1)
	s.registerAdminOAuth(v1)
	s.registerAdminClusters(v1)
	s.registerOAuth(e)
	s.registerEvents(v1)

	s.echo = e
	// The web portal answers GET and HEAD of every path no API route owns
	// (portal.go), so it is mounted last.
	s.handler = Normalize(o.Prefix, withPortal(e, mustPortal(o.Prefix)))
	return s
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// recover turns a panic in a handler into a 500 envelope with a generic
// message; the panic and stack go to the log only.
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(c.Request().Context(), "handler panic",
					"path", c.Request().URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = rpc.Errorf(rpc.Internal, "panic")
			}
		}()
		return next(c)
	}
}

// require authenticates the request (bearer token, or session cookie with
// its CSRF token on writes) and checks the principal is granted a; the
// caller it stores in the context is what the route's services see.
func (s *Server) require(a Access) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			p, err := s.authenticate(c)
			if err != nil {
				return err
			}
			caller, err := p.callerFor(a)
			if err != nil {
				return err
			}
			if wait, limited := s.rateLimited(c, p); limited {
				return tooManyRequests(c, wait)
			}
			c.SetRequest(r.WithContext(withCaller(withPrincipal(r.Context(), p), caller)))
			return next(c)
		}
	}
}

func (s *Server) readyz(c echo.Context) error {
	if !s.ready() || !s.nc.IsConnected() {
		return rpc.Errorf(rpc.Unavailable, "not ready")
	}
	return ok(c, struct{}{})
}

// body reads the request body, at most maxBody bytes.
func (s *Server) body(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.Response().Writer, c.Request().Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, echo.ErrStatusRequestEntityTooLarge
		}
		return nil, echo.ErrBadRequest
	}
	return b, nil
}

// call sends one request to a service under the per-request deadline.
func call[Resp any](c echo.Context, s *Server, subject string, req any) (Resp, error) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.timeout)
	defer cancel()
	return rpc.Call[Resp](ctx, s.nc, subject, req)
}
