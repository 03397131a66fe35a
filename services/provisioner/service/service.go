// Package service wires the provisioner: it owns the cluster registrations
// (KV EGS_CLUSTERS) and the GPU inventory (KV EGS_INVENTORY, stream
// EGS_INVENTORY) it reads from Kubernetes, hands nodes over to workspaces on
// egs.cmd.v1.provisioner.<apply|remove> and reports on EGS_PROVISION, and
// serves egs.rpc.v1.provisioner.<inventory|kubeconfig>.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/provisioner/internal/clusters"
	"github.com/open-egs/egs/services/provisioner/internal/k8sinventory"
	"github.com/open-egs/egs/services/provisioner/internal/natsapi"
	"github.com/open-egs/egs/services/provisioner/internal/reconcile"
	"github.com/open-egs/egs/services/provisioner/internal/registration"
	"github.com/open-egs/egs/services/provisioner/internal/workspaces"
)

// Name is the service name (micro service, queue group, log attribute).
const Name = "provisioner"

// Version is reported by the micro service.
const Version = "0.1.0"

// Crash points that Deps.CrashPoint is called with.
const (
	CrashAfterApply  = natsapi.CrashAfterApply
	CrashAfterRemove = natsapi.CrashAfterRemove
)

// Deps is everything Run needs.
type Deps struct {
	Config Config
	NATS   *nats.Conn   // owned by the caller; Run does not close it
	Log    *slog.Logger // required
	Ready  func()       // called once, when the inventory is in the KV and intake runs

	// Clusters are the clusters served, by name. When both Clusters and
	// RESTConfigs are nil, Run builds them from Config: -kubeconfig, else
	// -scenario, else sim.Default(). Fake clientsets are registered as
	// simulated.
	Clusters map[string]kubernetes.Interface
	// RESTConfigs are real clusters served, by name; their server and CA go
	// into issued kubeconfigs.
	RESTConfigs map[string]*rest.Config
	// CrashPoint, when set (tests only), is called at CrashAfterApply (nodes
	// patched, applied not yet published) and CrashAfterRemove.
	CrashPoint func(point string)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Run declares the provisioner's streams, buckets and consumer, registers the
// clusters, syncs the inventory, then serves commands and RPCs until ctx
// ends. It returns nil after a clean shutdown.
func Run(ctx context.Context, d Deps) error {
	d.Config = d.Config.withDefaults()
	if err := d.Config.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if d.NATS == nil || d.Log == nil {
		return errors.New("deps: NATS and Log are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	static, err := staticClusters(d)
	if err != nil {
		return err
	}
	kcs := make(map[string]kubernetes.Interface, len(static))
	for _, c := range static {
		if !events.ValidToken(c.Name) {
			return fmt.Errorf("cluster name %q is not a valid subject token", c.Name)
		}
		kcs[c.Name] = c.Client
	}
	reg := clusters.NewRegistry(static...)

	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	invStream, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{
		Name:              events.StreamInventory,
		Subjects:          []string{events.SubjectInventoryAll},
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 16,
	}))
	if err != nil {
		return err
	}
	provStream, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{
		Name:     events.StreamProvision,
		Subjects: []string{events.SubjectProvisionAll},
		Storage:  jetstream.FileStorage,
	}))
	if err != nil {
		return err
	}
	if _, err := bus.EnsureStream(ctx, js, bus.CommandStream()); err != nil {
		return err
	}
	if err := bus.EnsureDeadLetterStream(ctx, js); err != nil {
		return err
	}
	invKV, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: events.BucketInventory, History: 1, Storage: jetstream.FileStorage,
		Description: "GPU nodes by <cluster>.<node>; owner: provisioner",
	})
	if err != nil {
		return err
	}
	clusterKV, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: events.BucketClusters, History: 1, Storage: jetstream.FileStorage,
		Description: "registered clusters; owner: provisioner",
	})
	if err != nil {
		return err
	}
	credsKV, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: events.BucketClusterCredentials, History: 1, Storage: jetstream.FileStorage,
		Description: "sealed kubeconfigs of clusters registered at run time; owner: provisioner",
	})
	if err != nil {
		return err
	}
	spec := bus.ConsumerSpec{
		Stream:         events.StreamCommands,
		Durable:        events.DurableProvisionerCommands,
		FilterSubjects: []string{events.SubjectProvisionerCommands},
		HandlerTimeout: d.Config.HandlerTimeout,
		AckWait:        d.Config.AckWait,
	}
	cons, err := bus.EnsureConsumer(ctx, js, spec)
	if err != nil {
		return err
	}
	var sealer *registration.Sealer
	if d.Config.CredentialsKeyFile != "" {
		if sealer, err = registration.LoadOrCreateKey(d.Config.CredentialsKeyFile); err != nil {
			return err
		}
	}
	served := &served{}
	mgr := registration.New(registration.Config{Credentials: credsKV, Clusters: clusterKV, Sealer: sealer,
		Registry: reg, Served: served, Log: d.Log, Now: d.Now, HealthInterval: d.Config.HealthInterval})
	if err := mgr.Load(ctx); err != nil {
		return err
	}
	for _, c := range reg.List() {
		kcs[c.Name] = c.Client
	}

	pub := bus.NewPublisher(js)
	syncer, err := k8sinventory.New(k8sinventory.Config{
		Clusters: kcs, KV: invKV, Stream: invStream, Pub: pub,
		Log: d.Log, Now: d.Now, Workers: d.Config.InventoryWorkers, SyncTimeout: d.Config.SyncTimeout,
	})
	if err != nil {
		return err
	}
	var rec *reconcile.Reconciler
	wsCache := workspaces.New(js, d.Log, func(name string) { rec.Enqueue(name) })
	rec = reconcile.New(reg, wsCache, d.Log, d.Config.ReconcileInterval)
	served.syncer, served.rec = syncer, rec
	cmds := &natsapi.Commands{Clusters: reg, Workspaces: wsCache, Pub: pub, Log: d.Log, Now: d.Now,
		Provision: provStream, CrashPoint: d.CrashPoint,
		EvictionDeadline: d.Config.EvictionDeadline, EvictionWait: min(d.Config.EvictionWait, d.Config.HandlerTimeout/2)}
	queries := &natsapi.Queries{Inventory: syncer, Clusters: reg, Workspaces: wsCache, TokenTTL: d.Config.TokenTTL, Log: d.Log}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return wsCache.Run(gctx) })
	g.Go(func() error { return rec.Run(gctx) })
	g.Go(func() error { return mgr.Run(gctx) })
	synced := make(chan struct{})
	g.Go(func() error { return syncer.Run(gctx, func() { close(synced) }) })
	g.Go(func() error {
		select {
		case <-gctx.Done():
			return nil
		case <-synced:
		}
		d.Log.Info("inventory synced", "clusters", len(kcs), "nodes", len(syncer.List(nil)))
		svc, err := rpc.Serve(d.NATS, Name, Version,
			rpc.Method{Subject: events.RPCInventoryList, Handler: rpc.Handle(d.Log, d.Config.RPCTimeout, queries.InventoryList)},
			rpc.Method{Subject: events.RPCKubeConfig, Handler: rpc.Handle(d.Log, d.Config.RPCTimeout, queries.KubeConfig)},
			rpc.Method{Subject: events.RPCClusterRegister, Handler: rpc.Handle(d.Log, d.Config.RPCTimeout, mgr.Register)},
			rpc.Method{Subject: events.RPCClusterUnregister, Handler: rpc.Handle(d.Log, d.Config.RPCTimeout, mgr.Unregister)},
			rpc.Method{Subject: events.RPCClusterList, Handler: rpc.Handle(d.Log, d.Config.RPCTimeout, mgr.List)},
		)
		if err != nil {
			return err
		}
		cg, cctx := errgroup.WithContext(gctx)
		cg.Go(func() error { return bus.Consume(cctx, js, cons, spec, cmds.Handle, d.Log) })
		cg.Go(func() error {
			<-cctx.Done()
			if err := svc.Stop(); err != nil {
				return fmt.Errorf("stop rpc service: %w", err)
			}
			return nil
		})
		if d.Ready != nil {
			d.Ready()
		}
		return cg.Wait()
	})
	if err := g.Wait(); err != nil {
		return err
	}
	d.Log.Info("stopped")
	return nil
}

// served starts and stops serving clusters registered at run time: the
// inventory follows their nodes, the reconciler sets up their workspaces.
type served struct {
	syncer *k8sinventory.Syncer
	rec    *reconcile.Reconciler
}

func (s *served) AddCluster(name string, c *clusters.Cluster) error {
	if err := s.syncer.AddCluster(name, c.Client); err != nil {
		return err
	}
	s.rec.Resync()
	return nil
}

func (s *served) RemoveCluster(ctx context.Context, name string) error {
	return s.syncer.RemoveCluster(ctx, name)
}
