// Package service wires the node agent: one agent samples the GPUs of one
// node through NVML and publishes a batch per interval to
// egs.telemetry.v1.gpu.<cluster>.<node>. RunFleet runs one simulated agent per
// node of a simulated cluster, for the standalone product. The package is
// public so that the standalone process can compose it.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/nodeagent/internal/agent"
	"github.com/open-egs/egs/services/nodeagent/internal/gpu"
	"github.com/open-egs/egs/services/nodeagent/internal/outbox"
	"github.com/open-egs/egs/services/nodeagent/internal/podindex"
	"github.com/open-egs/egs/services/nodeagent/internal/simgpu"
)

// Name is the service's name.
const Name = "nodeagent"

// ErrNoNVML is returned by Run when the NVML library is absent and
// simulation was not chosen.
var ErrNoNVML = gpu.ErrNoNVML

// Config is the configuration of one node agent.
type Config struct {
	Cluster      string
	Node         string
	Interval     time.Duration
	Buffer       int // batches kept while the bus is unreachable
	MaxInflight  int // unacknowledged asynchronous publishes
	FlushTimeout time.Duration
	ProcRoot     string
	// PodNames names the pods of GPU processes from the API server;
	// Kubeconfig is read for it, or the in-cluster ServiceAccount when empty.
	PodNames   bool
	Kubeconfig string

	// Simulate replaces NVML by simulated GPUs of the given shape.
	Simulate     bool
	SimProduct   string
	SimGPUs      int
	SimMemoryMiB int
}

// RegisterFlags registers the flags on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Cluster, "cluster", "", "Name of the cluster this node belongs to (a subject token).")
	fs.StringVar(&c.Node, "node", "", "Kubernetes node name (in a DaemonSet: the downward API's spec.nodeName).")
	fs.DurationVar(&c.Interval, "interval", time.Second, "Sampling interval.")
	fs.IntVar(&c.Buffer, "buffer", 900, "Batches kept while the bus is unreachable; the oldest are dropped beyond it. Keep interval x buffer within the stream's 10-minute de-duplication window.")
	fs.IntVar(&c.MaxInflight, "publish.max-inflight", 64, "Asynchronous publishes awaiting acknowledgement at once.")
	fs.DurationVar(&c.FlushTimeout, "shutdown.flush-timeout", 5*time.Second, "Time allowed at shutdown to publish what is buffered.")
	fs.StringVar(&c.ProcRoot, "proc.root", "/proc", "The host's /proc, to map GPU processes to pods through their cgroup.")
	fs.BoolVar(&c.PodNames, "pods.names", true, "Name the pod (namespace and name) of each GPU process from the Kubernetes API server (role deploy/kubernetes/nodeagent-clusterrole.yaml); without, only the pod UID from the cgroup. Needs -kubeconfig or running in a pod.")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "Kubeconfig for -pods.names; empty: the pod's ServiceAccount when running in a pod.")
	fs.BoolVar(&c.Simulate, "sim", false, "Simulate the GPUs instead of reading NVML.")
	fs.StringVar(&c.SimProduct, "sim.product", "NVIDIA-H100-80GB-HBM3", "Simulated GPU product.")
	fs.IntVar(&c.SimGPUs, "sim.gpus", 8, "Simulated GPUs.")
	fs.IntVar(&c.SimMemoryMiB, "sim.memory-mib", 81559, "Memory of a simulated GPU in MiB.")
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if !events.ValidToken(c.Cluster) {
		errs = append(errs, fmt.Errorf("cluster %q is not a valid subject token", c.Cluster))
	}
	if c.Node == "" || !events.ValidToken(events.NodeToken(c.Node)) {
		errs = append(errs, fmt.Errorf("node %q is not a valid node name", c.Node))
	}
	if c.Interval < 10*time.Millisecond {
		errs = append(errs, errors.New("interval must be at least 10ms"))
	}
	if c.Buffer < 1 {
		errs = append(errs, errors.New("buffer must be positive"))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, errors.New("publish.max-inflight must be positive"))
	}
	if c.Simulate && c.SimGPUs < 1 {
		errs = append(errs, errors.New("sim.gpus must be positive"))
	}
	return errors.Join(errs...)
}

// Deps are what Run needs; the caller owns and closes NATS.
type Deps struct {
	Config Config
	NATS   *nats.Conn
	Log    *slog.Logger // nil: discard
	Ready  func()       // called once sampling has started; may be nil
	// NVML is the library to read; nil: the real one, or the simulator when
	// Config.Simulate is set.
	NVML nvml.Interface
	Now  func() time.Time // nil: time.Now
}

// Run opens NVML (failing with ErrNoNVML when it is absent), samples every
// interval and publishes until ctx ends, then publishes what is buffered
// (within Config.FlushTimeout) and returns nil.
func Run(ctx context.Context, d Deps) error {
	if err := d.Config.Validate(); err != nil {
		return fmt.Errorf("nodeagent config: %w", err)
	}
	if d.NATS == nil {
		return errors.New("nodeagent: no NATS connection")
	}
	log := orDiscard(d.Log)
	now := d.Now
	if now == nil {
		now = time.Now
	}
	lib := d.NVML
	if lib == nil {
		if d.Config.Simulate {
			lib = simgpu.New(simgpu.Spec{Cluster: d.Config.Cluster, Node: d.Config.Node, Product: d.Config.SimProduct,
				MemoryMiB: d.Config.SimMemoryMiB, GPUs: d.Config.SimGPUs}, now).Lib()
		} else {
			lib = nvml.New()
		}
	}
	var lookup func(uid string) (namespace, name string)
	if d.Config.PodNames && !d.Config.Simulate {
		idx, err := podIndex(ctx, d.Config, log)
		if err != nil {
			return err
		}
		if idx != nil {
			defer idx.Stop()
			lookup = idx.Lookup
		}
	}
	sampler, err := gpu.Open(lib, gpu.ProcPods(d.Config.ProcRoot, lookup))
	if err != nil {
		return err
	}
	defer func() { _ = sampler.Close() }()
	js, err := newJetStream(d.NATS, d.Config.MaxInflight)
	if err != nil {
		return err
	}
	out := outbox.New(js, d.Config.Buffer, d.Config.MaxInflight, log)
	a, err := agent.New(d.Config.Cluster, d.Config.Node, sampler, out, log)
	if err != nil {
		return err
	}
	xids := !d.Config.Simulate && d.NVML == nil && sampler.WatchXIDs() == nil
	log.Info("node agent sampling", "cluster", d.Config.Cluster, "node", d.Config.Node, "gpus", sampler.Count(),
		"interval", d.Config.Interval, "xid_events", xids)
	if d.Ready != nil {
		d.Ready()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return out.Run(gctx, d.Config.FlushTimeout) })
	g.Go(func() error { return a.Run(gctx, d.Config.Interval, now) })
	if xids {
		g.Go(func() error {
			for gctx.Err() == nil {
				sampler.PollXIDs(500)
			}
			return nil
		})
	}
	return g.Wait()
}

func newJetStream(nc *nats.Conn, maxInflight int) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(maxInflight*2, 256)),
		jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// podIndex starts the watch of the node's pods, with the configured
// kubeconfig or, in a pod, its ServiceAccount; nil when neither is there
// (outside Kubernetes). It waits up to 10 s for the first list.
func podIndex(ctx context.Context, c Config, log *slog.Logger) (*podindex.Index, error) {
	var rc *rest.Config
	var err error
	switch {
	case c.Kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		rc, err = rest.InClusterConfig()
	default:
		log.Info("not in a pod and no -kubeconfig: GPU processes carry pod UIDs only")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pods.names: kubernetes config: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("pods.names: kubernetes client: %w", err)
	}
	idx := podindex.Start(cs, c.Node, log)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !idx.WaitSynced(wctx) {
		log.Warn("pods of the node not listed yet; GPU processes carry pod UIDs until they are", "node", c.Node)
	}
	return idx, nil
}
