package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/nodeagent/internal/agent"
	"github.com/open-egs/egs/services/nodeagent/internal/gpu"
	"github.com/open-egs/egs/services/nodeagent/internal/outbox"
	"github.com/open-egs/egs/services/nodeagent/internal/simgpu"
)

// SimNode is one simulated GPU node (a node of a provisioner sim scenario).
type SimNode struct {
	Cluster   string
	Node      string
	Product   string
	MemoryMiB int
	GPUs      int
}

// FleetConfig configures RunFleet.
type FleetConfig struct {
	Interval     time.Duration // default 1s
	Buffer       int           // batches per node kept while the bus is unreachable; default 900
	MaxInflight  int           // default 256
	FlushTimeout time.Duration // default 5s
	// FollowLedger makes the GPUs of nodes held by a GPR (in the scheduler's
	// EGS_LEDGER bucket) run the workload pattern; others idle. Default on
	// through NewFleetConfig.
	FollowLedger bool
}

// NewFleetConfig returns the defaults.
func NewFleetConfig() FleetConfig {
	return FleetConfig{Interval: time.Second, Buffer: 900, MaxInflight: 256, FlushTimeout: 5 * time.Second, FollowLedger: true}
}

// FleetDeps are what RunFleet needs; the caller owns and closes NATS.
type FleetDeps struct {
	Config FleetConfig
	Nodes  []SimNode
	NATS   *nats.Conn
	Log    *slog.Logger
	Ready  func()
	Now    func() time.Time
}

// RunFleet runs one simulated node agent per node, sharing one connection,
// one clock tick and one outbox, and serves events.RPCNodeAgentSimLoad, until
// ctx ends; it returns nil on a clean shutdown.
func RunFleet(ctx context.Context, d FleetDeps) error {
	if d.NATS == nil {
		return errors.New("nodeagent fleet: no NATS connection")
	}
	cfg := d.Config
	def := NewFleetConfig()
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = def.Buffer
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = def.MaxInflight
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = def.FlushTimeout
	}
	log := orDiscard(d.Log)
	now := d.Now
	if now == nil {
		now = time.Now
	}
	js, err := newJetStream(d.NATS, cfg.MaxInflight)
	if err != nil {
		return err
	}
	out := outbox.New(js, cfg.Buffer*max(len(d.Nodes), 1), cfg.MaxInflight, log)
	f := &fleet{byKey: map[string]*simgpu.Node{}, byName: map[string][]*simgpu.Node{}}
	var agents []*agent.Agent
	for _, n := range d.Nodes {
		sn := simgpu.New(simgpu.Spec{Cluster: n.Cluster, Node: n.Node, Product: n.Product, MemoryMiB: n.MemoryMiB, GPUs: n.GPUs}, now)
		s, err := gpu.Open(sn.Lib(), nil)
		if err != nil {
			return fmt.Errorf("simulated node %s/%s: %w", n.Cluster, n.Node, err)
		}
		a, err := agent.New(n.Cluster, n.Node, s, out, log)
		if err != nil {
			return err
		}
		agents = append(agents, a)
		f.byKey[events.NodeKey(n.Cluster, n.Node)] = sn
		f.byName[n.Node] = append(f.byName[n.Node], sn)
	}
	svc, err := rpc.Serve(d.NATS, "nodeagent-sim", Version,
		rpc.Method{Subject: events.RPCNodeAgentSimLoad, Handler: rpc.Handle(log, 5*time.Second, f.setLoad)})
	if err != nil {
		return err
	}
	log.Info("simulated node agents sampling", "nodes", len(agents), "interval", cfg.Interval)
	if d.Ready != nil {
		d.Ready()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return out.Run(gctx, cfg.FlushTimeout) })
	g.Go(func() error {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for {
			at := now()
			for _, a := range agents {
				if err := a.Tick(at); err != nil {
					log.Warn("sample", "err", err)
				}
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	if cfg.FollowLedger {
		g.Go(func() error { return f.followLedger(gctx, jsPlain(d.NATS), log) })
	}
	err = g.Wait()
	return errors.Join(err, svc.Stop())
}

// Version is the version the micro service reports.
const Version = "0.1.0"

func jsPlain(nc *nats.Conn) jetstream.JetStream {
	js, _ := jetstream.New(nc) // fails only on invalid options
	return js
}

type fleet struct {
	byKey  map[string]*simgpu.Node
	byName map[string][]*simgpu.Node
}

func (f *fleet) setLoad(_ context.Context, req events.SimLoadRequest) (events.SimLoadReply, error) {
	var n *simgpu.Node
	if req.Cluster != "" {
		n = f.byKey[events.NodeKey(req.Cluster, req.Node)]
	} else if ns := f.byName[req.Node]; len(ns) == 1 {
		n = ns[0]
	} else if len(ns) > 1 {
		return events.SimLoadReply{}, rpc.Errorf(rpc.BadRequest, "node %q is in several clusters: name the cluster", req.Node)
	}
	if n == nil {
		return events.SimLoadReply{}, rpc.Errorf(rpc.NotFound, "no simulated node %q", req.Node)
	}
	if req.Utilization != nil && (*req.Utilization < 0 || *req.Utilization > 100) {
		return events.SimLoadReply{}, rpc.Errorf(rpc.Invalid, "utilization must be 0..100, got %d", *req.Utilization)
	}
	if req.Utilization == nil {
		n.ClearUtilization()
	} else {
		n.SetUtilization(*req.Utilization)
	}
	s := n.Spec()
	return events.SimLoadReply{Cluster: s.Cluster, Node: s.Node, GPUs: s.GPUs, Utilization: req.Utilization}, nil
}

// followLedger marks nodes provisioned while the scheduler's ledger holds them.
func (f *fleet) followLedger(ctx context.Context, js jetstream.JetStream, log *slog.Logger) error {
	kv, err := bus.WaitKV(ctx, js, events.BucketLedger)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch ledger: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue
			}
			key := e.Key()
			if e.Operation() == jetstream.KeyValuePut {
				var a rpc.Allocation
				if err := json.Unmarshal(e.Value(), &a); err == nil {
					key = events.NodeKey(a.Cluster, a.Node)
				}
			}
			n := f.byKey[key]
			if n == nil {
				continue
			}
			held := e.Operation() == jetstream.KeyValuePut
			if !held {
				// A load set for one GPR's demo must not follow the node to the next GPR.
				n.ClearUtilization()
			}
			n.SetProvisioned(held)
			log.Debug("simulated node load follows ledger", "node", key, "provisioned", held)
		}
	}
}
