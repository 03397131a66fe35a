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
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/open-egs/egs/libs/logkey"

	"github.com/open-egs/egs/services/api/internal/httpapi"
	"github.com/open-egs/egs/services/api/internal/ratelimit"
	"github.com/open-egs/egs/services/api/internal/session"
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
	// RedisURL is the Redis of portal sessions and rate limits (redis://,
	// rediss:// or unix://); "" disables portal sessions. A secret when it
	// holds a password: never logged.
	RedisURL string
	// SessionIdle ends a portal session unused for this long.
	SessionIdle time.Duration
	// SessionMaxAge ends a portal session this long after login, used or not.
	SessionMaxAge time.Duration
	// SecureCookie marks the session cookie Secure even when the edge
	// cannot see TLS (a proxy terminating it without X-Forwarded-Proto).
	SecureCookie bool
	// OAuthUpstream is the auth service's issuer listener (auth
	// -oauth.http-addr) that /oauth2/* and /.well-known/* are proxied to
	// when auth runs apart; "" serves them only in the standalone process.
	OAuthUpstream string
	// OAuthEdgeSecret vouches for portal users to the issuer (the same as
	// auth -oauth.edge-secret). A secret.
	OAuthEdgeSecret string
	// RateLimit is how many requests each token or session may make per
	// RateLimitWindow (in Redis, across replicas); 0 disables the limit.
	RateLimit       int
	RateLimitWindow time.Duration
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
	fs.StringVar(&c.RedisURL, "redis.url", "", "Redis of portal sessions and rate limits (redis://, rediss://, unix://); empty disables portal sessions.")
	fs.DurationVar(&c.SessionIdle, "session.idle-timeout", session.DefaultIdle, "A portal session unused this long ends.")
	fs.DurationVar(&c.SessionMaxAge, "session.max-age", session.DefaultMaxAge, "A portal session ends this long after login, used or not.")
	fs.BoolVar(&c.SecureCookie, "session.secure-cookie", false, "Always mark the session cookie Secure (it is whenever the request came over TLS).")
	fs.IntVar(&c.RateLimit, "ratelimit.requests", 1200, "Requests each token or portal session may make per ratelimit.window (needs redis.url); 0 disables.")
	fs.DurationVar(&c.RateLimitWindow, "ratelimit.window", time.Minute, "Window of ratelimit.requests.")
	fs.StringVar(&c.OAuthUpstream, "oauth.upstream", "", "URL of the auth service's OAuth2 issuer listener to proxy /oauth2/* and /.well-known/* to.")
	fs.StringVar(&c.OAuthEdgeSecret, "oauth.edge-secret", "", "Secret shared with auth (-oauth.edge-secret) to vouch for portal users at /oauth2/auth.")
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
	if c.OAuthUpstream != "" {
		if u, err := url.Parse(c.OAuthUpstream); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("oauth.upstream %q must be an absolute URL", c.OAuthUpstream))
		}
	}
	if c.RateLimit < 0 || c.RateLimit > 0 && c.RateLimitWindow < time.Millisecond {
		errs = append(errs, errors.New("ratelimit.requests must not be negative and ratelimit.window at least 1ms"))
	}
	if c.RedisURL != "" {
		if c.SessionIdle <= 0 || c.SessionMaxAge <= 0 {
			errs = append(errs, errors.New("session.idle-timeout and session.max-age must be positive"))
		} else if c.SessionIdle > c.SessionMaxAge {
			errs = append(errs, errors.New("session.idle-timeout must not exceed session.max-age"))
		}
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
		slog.Bool("redis_set", c.RedisURL != ""),
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
	// OAuth, when set, is the auth service's OAuth2/OIDC issuer, served on
	// the edge's address (the standalone process passes it).
	OAuth http.Handler
}

// Edge is the HTTP handler of the edge with what it holds on NATS.
type Edge struct {
	server *httpapi.Server
	sub    *nats.Subscription
	subs   []*nats.Subscription // user, token and key revocations (sessions, user cache)
	redis  *redis.Client
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
	osubs, err := auth.SubscribeOAuth(d.NATS)
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	if err := catchUp(ctx, d, auth, timeout); err != nil {
		_ = sub.Unsubscribe()
		for _, s := range osubs {
			_ = s.Unsubscribe()
		}
		return nil, err
	}
	if _, err := auth.Refresh(ctx); err != nil {
		d.Log.Warn("initial jwks fetch; retrying on first token", logkey.Err, err)
	}
	e := &Edge{sub: sub, subs: osubs}
	opts := httpapi.Options{
		NATS: d.NATS, Log: d.Log, Auth: auth, Prefix: d.Config.HTTPPrefix, RPCTimeout: timeout,
		MaxBodyBytes: d.Config.MaxBodyBytes, Ready: e.ready.Load, Now: now, OAuth: d.OAuth,
		SecureCookie: d.Config.SecureCookie, OAuthEdgeSecret: d.Config.OAuthEdgeSecret,
	}
	if opts.OAuth == nil && d.Config.OAuthUpstream != "" {
		u, err := url.Parse(d.Config.OAuthUpstream)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("oauth.upstream: %w", err), e.Close())
		}
		opts.OAuth = httpapi.OAuthUpstream(u)
	}

	if err := e.portal(ctx, d, &opts, timeout, now); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	e.ready.Store(true)
	e.server = httpapi.New(opts)
	return e, nil
}

// portal sets up what portal users need: the user directory, the audit
// publisher and, with a Redis URL, the session store, with the revocation
// subscriptions that end sessions and the catch-up of the revocations made
// while no edge ran.
func (e *Edge) portal(ctx context.Context, d Deps, o *httpapi.Options, timeout time.Duration, now func() time.Time) error {
	o.Users = httpapi.NewUserDirectory(httpapi.NATSUserFetcher(d.NATS, timeout), now)
	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	err = httpapi.EnsureSessionStream(sctx, js)
	scancel()
	if err != nil {
		return err
	}
	o.Audit = httpapi.NewAuditor(js, d.Log, now)
	if d.Config.RedisURL != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		rdb, err := session.Open(rctx, d.Config.RedisURL)
		if err != nil {
			return err
		}
		e.redis = rdb
		o.Sessions = session.New(rdb, d.Config.SessionIdle, d.Config.SessionMaxAge, now)
		if d.Config.RateLimit > 0 {
			o.RateLimit = ratelimit.New(rdb, d.Config.RateLimit, d.Config.RateLimitWindow)
		}
	}
	rev := httpapi.NewRevocations(o.Users, o.Sessions, d.Log)
	subs, err := rev.Subscribe(d.NATS)
	if err != nil {
		return err
	}
	e.subs = append(e.subs, subs...)
	if o.Sessions == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := d.NATS.FlushWithContext(cctx); err != nil {
		return fmt.Errorf("flush revocation subscriptions: %w", err)
	}
	n, err := rev.CatchUp(cctx, js, o.Sessions.MaxAge())
	if err != nil {
		return err
	}
	d.Log.Info("read credential revocations of the session lifetime", "count", n)
	return nil
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

// StopStreams ends the open event streams (portal live updates), which would
// otherwise hold http.Server.Shutdown for its whole grace period.
func (e *Edge) StopStreams() { e.server.StopStreams() }

// SetReady sets what /readyz reports.
func (e *Edge) SetReady(ready bool) { e.ready.Store(ready) }

// Close unsubscribes from NATS and closes the Redis client.
func (e *Edge) Close() error {
	var errs []error
	for _, sub := range append([]*nats.Subscription{e.sub}, e.subs...) {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) &&
			!errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, fmt.Errorf("unsubscribe %s: %w", sub.Subject, err))
		}
	}
	if e.redis != nil {
		if err := e.redis.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close redis: %w", err))
		}
	}
	return errors.Join(errs...)
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
	srv.RegisterOnShutdown(edge.StopStreams)
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
