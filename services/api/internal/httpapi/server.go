package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/rpc"
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
}

// New builds the server and its routes.
func New(o Options) *Server {
	s := &Server{nc: o.NATS, log: o.Log, auth: o.Auth, timeout: o.RPCTimeout, maxBody: o.MaxBodyBytes, ready: o.Ready, now: o.Now}
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

	v1.POST("/api-key", s.createKey, s.require(Manage))
	v1.DELETE("/api-key", s.deleteKey, s.require(Manage))
	v1.GET("/api-key/list", s.listKeys, s.require(Manage))

	v1.POST("/slice-workspace", s.createWorkspace, s.require(Manage))
	v1.DELETE("/slice-workspace", s.deleteWorkspace, s.require(Manage))
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

	v1.POST("/gpr-template", s.createTemplate, s.require(Manage))
	v1.GET("/gpr-template", s.getTemplate, s.require(Read))
	v1.PUT("/gpr-template", s.updateTemplate, s.require(Manage))
	v1.DELETE("/gpr-template", s.deleteTemplate, s.require(Manage))
	v1.GET("/gpr-template/list", s.listTemplates, s.require(Read))

	v1.POST("/gpr-template-binding", s.createBinding, s.require(Write))
	v1.GET("/gpr-template-binding", s.getBinding, s.require(Read))
	v1.PUT("/gpr-template-binding", s.updateBinding, s.require(Write))
	v1.DELETE("/gpr-template-binding", s.deleteBinding, s.require(Write))
	v1.GET("/gpr-template-binding/list", s.listBindings, s.require(Read))

	v1.GET("/workspace-policy", s.getPolicy, s.require(Read))
	v1.PUT("/workspace-policy", s.setPolicy, s.require(Manage))
	s.registerTelemetry(e, v1)

	s.echo = e
	s.handler = Normalize(o.Prefix, e)
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

// require authenticates the bearer token and checks the role grants a.
func (s *Server) require(a Access) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			caller, err := s.auth.Authenticate(r.Context(), bearer(r.Header.Get(echo.HeaderAuthorization)))
			if err != nil {
				return err
			}
			if !permits(caller, a) {
				return errForbidden
			}
			c.SetRequest(r.WithContext(withCaller(r.Context(), caller)))
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
