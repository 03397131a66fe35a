// Package service wires the api edge: the EGS v1 REST API served over HTTP
// and translated into NATS request/reply. The edge owns no state and declares
// no streams, buckets or durable consumers; it holds one core NATS
// subscription, to API key deletions, for its token deny list, and fills that
// list at start-up with the deletions of the last token lifetime, read from
// the auth stream with an ephemeral ordered consumer.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/open-egs/egs/libs/logkey"

	"github.com/open-egs/egs/services/api/internal/httpapi"
)

// Name is the service name (log key service, NATS connection name).
const Name = "api"

// Config is the edge's configuration; its flags are the schema.
type Config struct {
	HTTPAddr          string
	HTTPPrefix        string
	AdminToken        string // secret: never logged
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	RPCTimeout        time.Duration
	MaxBodyBytes      int64
}

// RegisterFlags registers the configuration flags on fs with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http.addr", ":8080", "HTTP listen address.")
	fs.StringVar(&c.HTTPPrefix, "http.prefix", "", "Path prefix stripped before routing, e.g. /egs (requests without it are served too).")
	fs.StringVar(&c.AdminToken, "admin.token", "", "Static admin bearer token (role admin); empty disables it.")
	fs.DurationVar(&c.ReadHeaderTimeout, "http.read-header-timeout", 10*time.Second, "Deadline for reading request headers.")
	fs.DurationVar(&c.ReadTimeout, "http.read-timeout", 30*time.Second, "Deadline for reading a whole request.")
	fs.DurationVar(&c.WriteTimeout, "http.write-timeout", 60*time.Second, "Deadline for writing a response; keep above rpc.timeout.")
	fs.DurationVar(&c.IdleTimeout, "http.idle-timeout", 60*time.Second, "How long an idle keep-alive connection stays open.")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown.timeout", 15*time.Second, "Grace period for in-flight requests at shutdown.")
	fs.DurationVar(&c.RPCTimeout, "rpc.timeout", 10*time.Second, "Deadline of each NATS request to a service.")
	fs.Int64Var(&c.MaxBodyBytes, "http.max-body-bytes", 1<<20, "Largest accepted request body.")
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http.addr is required"))
	}
	if c.HTTPPrefix != "" && strings.ContainsAny(c.HTTPPrefix, "?#") {
		errs = append(errs, fmt.Errorf("http.prefix %q must be a plain path", c.HTTPPrefix))
	}
	for name, d := range map[string]time.Duration{
		"http.read-header-timeout": c.ReadHeaderTimeout, "http.read-timeout": c.ReadTimeout,
		"http.write-timeout": c.WriteTimeout, "http.idle-timeout": c.IdleTimeout,
		"shutdown.timeout": c.ShutdownTimeout, "rpc.timeout": c.RPCTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if c.WriteTimeout > 0 && c.RPCTimeout >= c.WriteTimeout {
		errs = append(errs, errors.New("rpc.timeout must be shorter than http.write-timeout"))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("http.max-body-bytes must be positive"))
	}
	return errors.Join(errs...)
}

// LogValue redacts the admin token.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("http_prefix", c.HTTPPrefix),
		slog.Bool("admin_token_set", c.AdminToken != ""),
		slog.Duration("rpc_timeout", c.RPCTimeout),
	)
}

// Deps are what Run needs. Run does not close NATS.
type Deps struct {
	Config Config
	NATS   *nats.Conn
	Log    *slog.Logger
	Ready  func() // called once the edge is serving; may be nil
	// Listener, when set, is served instead of listening on Config.HTTPAddr
	// (tests and the standalone process pass one on port 0). Run closes it.
	Listener net.Listener
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Edge is the HTTP handler of the edge with what it holds on NATS.
type Edge struct {
	server *httpapi.Server
	sub    *nats.Subscription
	ready  atomic.Bool
}

// New builds the edge: it subscribes to API key deletions, then reads the
// deletions of the last token.TTL from the auth stream (subscribing first,
// so no deletion falls between the two), and fetches the JWKS once (best
// effort: an unavailable auth service is retried when the first token
// arrives). A failure to read the deletions fails New: an edge that may
// accept a deleted key's tokens must not report ready. Close releases the
// subscription.
func New(ctx context.Context, d Deps) (*Edge, error) {
	if d.NATS == nil || d.Log == nil {
		return nil, errors.New("api: NATS and Log are required")
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	timeout := d.Config.RPCTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	auth := httpapi.NewAuthenticator(httpapi.NATSJWKSFetcher(d.NATS, timeout), d.Config.AdminToken, now, d.Log)
	sub, err := auth.SubscribeRevocations(d.NATS)
	if err != nil {
		return nil, err
	}
	if err := catchUp(ctx, d, auth, timeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	if _, err := auth.Refresh(ctx); err != nil {
		d.Log.Warn("initial jwks fetch; retrying on first token", logkey.Err, err)
	}
	e := &Edge{sub: sub}
	e.ready.Store(true)
	e.server = httpapi.New(httpapi.Options{
		NATS: d.NATS, Log: d.Log, Auth: auth, Prefix: d.Config.HTTPPrefix, RPCTimeout: timeout,
		MaxBodyBytes: d.Config.MaxBodyBytes, Ready: e.ready.Load, Now: now,
	})
	return e, nil
}

// catchUp revokes the keys deleted before the edge started, once the live
// subscription is known to the server. It is bounded by timeout, not by the
// cancellation of ctx, so an edge told to stop while starting still starts
// whole and then shuts down cleanly.
func catchUp(ctx context.Context, d Deps, auth *httpapi.Authenticator, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := d.NATS.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("flush %s subscription: %w", httpapi.SubjectAPIKeyDeleted, err)
	}
	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	n, err := auth.CatchUpRevocations(ctx, js)
	if err != nil {
		return err
	}
	d.Log.Info("read recent api key deletions", "count", n)
	return nil
}

// ServeHTTP serves one request of the EGS API (and /healthz, /readyz).
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.server.ServeHTTP(w, r) }

// SetReady sets what /readyz reports.
func (e *Edge) SetReady(ready bool) { e.ready.Store(ready) }

// Close unsubscribes from NATS.
func (e *Edge) Close() error {
	if err := e.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("unsubscribe %s: %w", httpapi.SubjectAPIKeyDeleted, err)
	}
	return nil
}

// Run serves the API until ctx ends, then fails /readyz, shuts the HTTP
// server down gracefully within Config.ShutdownTimeout and unsubscribes. It
// returns nil on a clean shutdown.
func Run(ctx context.Context, d Deps) error {
	closeListener := func() {
		if d.Listener != nil {
			_ = d.Listener.Close()
		}
	}
	if err := d.Config.Validate(); err != nil {
		closeListener()
		return fmt.Errorf("config: %w", err)
	}
	edge, err := New(ctx, d)
	if err != nil {
		closeListener()
		return err
	}
	ln := d.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", d.Config.HTTPAddr); err != nil {
			return errors.Join(fmt.Errorf("listen %s: %w", d.Config.HTTPAddr, err), edge.Close())
		}
	}
	srv := &http.Server{
		Handler:           edge,
		ReadHeaderTimeout: d.Config.ReadHeaderTimeout,
		ReadTimeout:       d.Config.ReadTimeout,
		WriteTimeout:      d.Config.WriteTimeout,
		IdleTimeout:       d.Config.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(d.Log.Handler(), slog.LevelWarn),
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		edge.SetReady(false)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.Config.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	})
	d.Log.Info("api serving", "addr", ln.Addr().String(), "config", d.Config)
	if d.Ready != nil {
		d.Ready()
	}
	return errors.Join(g.Wait(), edge.Close())
}
