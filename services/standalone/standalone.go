// Package standalone runs the whole product in one process: an embedded NATS
// server with JetStream (file storage in the data directory), every service on
// its own in-process connection, a simulated cluster of GPU nodes (or one real
// cluster from a kubeconfig) and, unless REDIS_URL is set, a private
// redis-server child process on a Unix socket (libs/redisproc). Each service is the same code as its own binary;
// only the wiring is shared.
package standalone

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"k8s.io/client-go/kubernetes"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/natsembed"
	"github.com/open-egs/egs/libs/redisproc"

	api "github.com/open-egs/egs/services/api/service"
	auth "github.com/open-egs/egs/services/auth/service"
	scheduler "github.com/open-egs/egs/services/gpr-scheduler/service"
	nodeagent "github.com/open-egs/egs/services/nodeagent/service"
	provisioner "github.com/open-egs/egs/services/provisioner/service"
	"github.com/open-egs/egs/services/provisioner/sim"
	telemetry "github.com/open-egs/egs/services/telemetry/service"
	workspace "github.com/open-egs/egs/services/workspace/service"
)

// Config is the standalone configuration. Flags fall back to EGS_<FLAG>
// (see README), REDIS_URL for the Redis URL.
type Config struct {
	DataDir         string
	NATSListen      string
	HTTPAddr        string
	HTTPPrefix      string
	BootstrapAPIKey string // secret
	AdminToken      string // secret
	RedisURL        string
	PublicURL       string
	IdPConfig       string
	KubeConfig      string
	ClusterName     string
	Scenario        string
}

// RegisterFlags registers the configuration as flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data.dir", "./.egs", "Directory of all state (JetStream storage, signing key, bootstrap key).")
	fs.StringVar(&c.NATSListen, "nats.listen", "127.0.0.1:4222", "Client address of the embedded NATS server; a free port is used when this one is taken.")
	fs.StringVar(&c.HTTPAddr, "http.addr", ":8080", "Address of the REST API.")
	fs.StringVar(&c.HTTPPrefix, "http.prefix", "", "Path prefix stripped before routing (e.g. /egs).")
	fs.StringVar(&c.BootstrapAPIKey, "bootstrap.api-key", "", "Secret of the first Owner API key; generated and printed once when unset.")
	fs.StringVar(&c.AdminToken, "admin.token", "", "Admin access token accepted on every endpoint (unset: none).")
	fs.StringVar(&c.PublicURL, "public.url", "", "Public base URL of the product (the OAuth2/OIDC issuer); default http://<http.addr>, localhost for an unspecified host.")
	fs.StringVar(&c.IdPConfig, "idp.config", "", "Upstream OpenID providers for portal logins (JSON file, docs/auth.md).")
	fs.StringVar(&c.RedisURL, "redis.url", "", "Redis URL (env REDIS_URL); unset: a private redis-server child process.")
	fs.StringVar(&c.KubeConfig, "kubeconfig", "", "Serve the real cluster of this kubeconfig instead of the simulated ones.")
	fs.StringVar(&c.ClusterName, "cluster.name", "", "Name of the kubeconfig's cluster (default: its current context).")
	fs.StringVar(&c.Scenario, "scenario", "", "Simulated clusters file (default: built in, 2 clusters, 6 nodes of 8 GPUs).")
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("data_dir", c.DataDir), slog.String("nats_listen", c.NATSListen),
		slog.String("http_addr", c.HTTPAddr), slog.Bool("kubeconfig", c.KubeConfig != ""), slog.String("scenario", c.Scenario))
}

// Info says where the running product can be reached.
type Info struct {
	HTTPAddr string // actual address of the REST API
	NATSURL  string // client URL of the embedded NATS server
	RedisURL string
	NATS     *server.Server
}

// Deps are Run's collaborators.
type Deps struct {
	Log      *slog.Logger
	Stdout   io.Writer                       // where the generated bootstrap key is printed once
	Ready    func(Info)                      // called once every service serves
	Clusters map[string]kubernetes.Interface // overrides the scenario (tests, benchmarks)
	// Tune adjusts each service's configuration before it starts (tests).
	Tune func(*Services)
}

// Services holds each service's configuration, with defaults filled.
type Services struct {
	API         api.Config
	Auth        auth.Config
	Workspace   workspace.Config
	Scheduler   scheduler.Config
	Provisioner provisioner.Config
	Telemetry   telemetry.Config
	NodeAgents  nodeagent.FleetConfig
}

func defaults[C any](register func(*C, *flag.FlagSet)) C {
	var c C
	register(&c, flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// DefaultServices returns every service's defaults.
func DefaultServices() Services {
	return Services{
		API:         defaults((*api.Config).RegisterFlags),
		Auth:        defaults((*auth.Config).RegisterFlags),
		Workspace:   defaults((*workspace.Config).RegisterFlags),
		Scheduler:   defaults((*scheduler.Config).RegisterFlags),
		Provisioner: defaults((*provisioner.Config).RegisterFlags),
		Telemetry:   defaults((*telemetry.Config).RegisterFlags),
		NodeAgents:  nodeagent.NewFleetConfig(),
	}
}

type component struct {
	name string
	run  func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error
}

// Run starts everything and serves until ctx ends, then stops the services in
// reverse order (the API first) and the NATS server last.
func Run(ctx context.Context, cfg Config, d Deps) error {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	srv, err := natsembed.Start(natsembed.Options{Listen: cfg.NATSListen, FallbackToFree: true,
		StoreDir: filepath.Join(cfg.DataDir, "jetstream")})
	if err != nil {
		return err
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	if srv.ClientURL() != "nats://"+cfg.NATSListen {
		d.Log.Warn("NATS listen address taken; using a free port", "wanted", cfg.NATSListen, "nats_url", srv.ClientURL())
	}
	d.Log.Info("embedded NATS with JetStream", "nats_url", srv.ClientURL(), "store_dir", filepath.Join(cfg.DataDir, "jetstream"))

	redisURL := cfg.RedisURL
	if redisURL == "" {
		rp, dir, err := startRedis(ctx)
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		defer rp.Stop()
		redisURL = rp.URL()
		d.Log.Info("private redis-server for portal sessions, OAuth2 state and rate limits; production sets REDIS_URL", "redis_url", redisURL)
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	svc := DefaultServices()
	svc.API.HTTPAddr, svc.API.HTTPPrefix, svc.API.AdminToken = cfg.HTTPAddr, cfg.HTTPPrefix, cfg.AdminToken
	svc.API.RedisURL = redisURL
	// The OAuth2/OIDC issuer runs in auth and is served on the edge's
	// address; the edge vouches for portal users with a per-process secret.
	edgeSecret := randomSecret()
	svc.Auth.RedisURL, svc.Auth.IssuerURL, svc.Auth.EdgeSecret = redisURL, publicURL(cfg, ln.Addr()), edgeSecret
	svc.API.OAuthEdgeSecret = edgeSecret
	svc.Auth.IdPConfig = cfg.IdPConfig
	svc.Auth.DataDir, svc.Auth.BootstrapAPIKey = cfg.DataDir, cfg.BootstrapAPIKey
	svc.Provisioner.KubeConfig, svc.Provisioner.ClusterName, svc.Provisioner.Scenario = cfg.KubeConfig, cfg.ClusterName, cfg.Scenario
	svc.Provisioner.CredentialsKeyFile = filepath.Join(cfg.DataDir, "cluster-credentials.key")
	svc.Telemetry.HTTPAddr = "" // the edge serves /metrics
	if d.Tune != nil {
		d.Tune(&svc)
	}
	info := Info{HTTPAddr: ln.Addr().String(), NATSURL: srv.ClientURL(), RedisURL: redisURL, NATS: srv}
	simNodes, err := simulatedNodes(cfg, d)
	if err != nil {
		_ = ln.Close()
		return err
	}

	issuer := &swappable{}
	stages := [][]component{
		{{provisioner.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return provisioner.Run(ctx, provisioner.Deps{Config: svc.Provisioner, NATS: nc, Log: log, Ready: ready, Clusters: d.Clusters})
		}}},
		{{workspace.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return workspace.Run(ctx, workspace.Deps{Config: svc.Workspace, NATS: nc, Log: log, Ready: ready})
		}}, {auth.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return auth.Run(ctx, auth.Deps{Config: svc.Auth, NATS: nc, Log: log, Ready: ready, Stdout: d.Stdout,
				Issuer: issuer.set})
		}}},
		{{scheduler.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return scheduler.Run(ctx, scheduler.Deps{Config: svc.Scheduler, NATS: nc, Log: log, Ready: ready})
		}}},
		{{telemetry.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return telemetry.Run(ctx, telemetry.Deps{Config: svc.Telemetry, NATS: nc, Log: log, Ready: ready})
		}}, {nodeagent.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return nodeagent.RunFleet(ctx, nodeagent.FleetDeps{Config: svc.NodeAgents, Nodes: simNodes, NATS: nc, Log: log, Ready: ready})
		}}},
		{{api.Name, func(ctx context.Context, nc *nats.Conn, log *slog.Logger, ready func()) error {
			return api.Run(ctx, api.Deps{Config: svc.API, NATS: nc, Log: log, Ready: ready, Listener: ln, OAuth: issuer})
		}}},
	}
	s := &supervisor{log: d.Log, url: srv.ClientURL(), srv: srv}
	defer s.stop()
	for _, stage := range stages {
		if err := s.startStage(ctx, stage); err != nil {
			_ = ln.Close()
			return err
		}
	}
	d.Log.Info("EGS standalone ready", "http_addr", info.HTTPAddr, "nats_url", info.NATSURL)
	if d.Ready != nil {
		d.Ready(info)
	}
	select {
	case <-ctx.Done():
		return s.stop()
	case err := <-s.failed:
		_ = s.stop()
		return err
	}
}

type running struct {
	name   string
	cancel context.CancelFunc
	done   chan error
	nc     *nats.Conn
}

type supervisor struct {
	log     *slog.Logger
	url     string
	srv     *server.Server
	started []*running
	failed  chan error
	stopped bool
}

func (s *supervisor) startStage(ctx context.Context, stage []component) error {
	if s.failed == nil {
		s.failed = make(chan error, 16)
	}
	readies := make([]chan struct{}, len(stage))
	for i, c := range stage {
		log := s.log.With("service", c.name)
		nc, err := bus.Connect(s.url, "egs-"+c.name, log, nats.InProcessServer(s.srv))
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &running{name: c.name, cancel: cancel, done: make(chan error, 1), nc: nc}
		s.started = append(s.started, r)
		ready := make(chan struct{})
		readies[i] = ready
		var once sync.Once
		go func() {
			err := c.run(rctx, nc, log, func() { once.Do(func() { close(ready) }) })
			if err == nil && rctx.Err() == nil {
				err = errors.New("stopped unexpectedly")
			}
			if err != nil && rctx.Err() == nil {
				s.failed <- fmt.Errorf("%s: %w", c.name, err)
			}
			r.done <- err
		}()
	}
	for i, ready := range readies {
		select {
		case <-ready:
		case err := <-s.failed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("%s not ready within 2 minutes", stage[i].name)
		}
	}
	return nil
}

// stop cancels the services in reverse start order, waiting for each.
func (s *supervisor) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		r := s.started[i]
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
			}
		case <-time.After(30 * time.Second):
			errs = append(errs, fmt.Errorf("%s did not stop within 30s", r.name))
		}
		_ = r.nc.Drain()
	}
	return errors.Join(errs...)
}

// simulatedNodes are the GPU nodes whose node agents run in-process: those of
// the simulated scenario; none for a real cluster or clusters given by Deps.
func simulatedNodes(cfg Config, d Deps) ([]nodeagent.SimNode, error) {
	if cfg.KubeConfig != "" || d.Clusters != nil {
		return nil, nil
	}
	sc := sim.Default()
	if cfg.Scenario != "" {
		var err error
		if sc, err = sim.Load(cfg.Scenario); err != nil {
			return nil, err
		}
	}
	var out []nodeagent.SimNode
	for _, c := range sc.Clusters {
		for _, g := range c.Nodes {
			for i := range g.Count {
				out = append(out, nodeagent.SimNode{Cluster: c.Name, Node: g.NodeName(i), Product: g.GPUProduct,
					MemoryMiB: g.GPUMemoryMiB, GPUs: g.GPUs})
			}
		}
	}
	return out, nil
}

// startRedis runs a private redis-server (libs/redisproc) on a Unix socket in
// a new temporary directory, which the caller removes after stopping it.
func startRedis(ctx context.Context) (*redisproc.Proc, string, error) {
	dir, err := os.MkdirTemp("", "egs-redis-")
	if err != nil {
		return nil, "", fmt.Errorf("redis dir: %w", err)
	}
	rp, err := redisproc.Start(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("no REDIS_URL and no private redis-server: %w", err)
	}
	return rp, dir, nil
}

// swappable is the issuer's handler as auth hands it over (auth starts
// before the edge, and could be restarted); 503 until then.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (s *swappable) set(h http.Handler) { s.h.Store(&h) }

func (s *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "OAuth2 issuer not ready", http.StatusServiceUnavailable)
}

// publicURL is the issuer URL: -public.url, else the listener's address
// (localhost for an unspecified one) with the path prefix.
func publicURL(cfg Config, addr net.Addr) string {
	if cfg.PublicURL != "" {
		return strings.TrimSuffix(cfg.PublicURL, "/")
	}
	host := addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok && (ta.IP == nil || ta.IP.IsUnspecified()) {
		host = net.JoinHostPort("localhost", strconv.Itoa(ta.Port))
	}
	prefix := strings.Trim(cfg.HTTPPrefix, "/")
	if prefix != "" {
		prefix = "/" + prefix
	}
	return "http://" + host + prefix
}

// randomSecret returns 256 random bits, base64url.
func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
