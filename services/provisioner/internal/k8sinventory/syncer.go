// Package k8sinventory keeps the inventory KV bucket and the inventory stream
// in step with the GPU nodes of every cluster: one node informer per cluster
// feeds a work queue, and a worker writes a node's entry only when it changed
// (compare-and-set on the KV revision, so replicas never clobber each other)
// and announces it with an event whose id derives from that revision.
package k8sinventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/provisioner/internal/inventory"
)

// Source is the CloudEvents source of inventory events.
const Source = "egs/provisioner"

// Config is what a Syncer needs.
type Config struct {
	Clusters map[string]kubernetes.Interface
	KV       jetstream.KeyValue // events.BucketInventory
	Stream   jetstream.Stream   // events.StreamInventory, to check what was announced
	Pub      *bus.Publisher
	Log      *slog.Logger
	Now      func() time.Time
	Workers  int // default 4
	// SyncTimeout bounds the wait for a cluster's first node list at start;
	// a cluster that takes longer (unreachable) is served once it answers,
	// and its inventory entries are kept meanwhile. Default 30 s.
	SyncTimeout time.Duration
}

type nodeRef struct{ cluster, name string }

type clusterWatch struct {
	factory informers.SharedInformerFactory
	lister  listersv1.NodeLister
	synced  cache.InformerSynced
	stop    chan struct{}
}

// Syncer mirrors the GPU nodes of the clusters into the inventory. Create it
// with New and run it with Run; clusters may be added and removed while it
// runs. List, AddCluster and RemoveCluster are safe for concurrent use.
type Syncer struct {
	cfg   Config
	queue workqueue.TypedRateLimitingInterface[nodeRef]

	cmu      sync.Mutex
	clusters map[string]*clusterWatch
	runCtx   context.Context // set once Run has started the informers

	mu   sync.RWMutex
	seen map[string]events.Node // KV key → the entry as the KV holds it
}

// New builds a Syncer; it starts nothing.
func New(cfg Config) (*Syncer, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Syncer{
		cfg:      cfg,
		clusters: map[string]*clusterWatch{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[nodeRef](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[nodeRef]{Name: "inventory"}),
		seen: map[string]events.Node{},
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 30 * time.Second
		s.cfg.SyncTimeout = cfg.SyncTimeout
	}
	for name, kc := range cfg.Clusters {
		w, err := s.watch(name, kc)
		if err != nil {
			return nil, err
		}
		s.clusters[name] = w
	}
	return s, nil
}

// watch builds the node informer of one cluster; it starts nothing.
func (s *Syncer) watch(name string, kc kubernetes.Interface) (*clusterWatch, error) {
	f := informers.NewSharedInformerFactory(kc, 0)
	inf := f.Core().V1().Nodes()
	enqueue := func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err == nil {
			s.queue.Add(nodeRef{cluster: name, name: key})
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("node informer of cluster %s: %w", name, err)
	}
	return &clusterWatch{factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced, stop: make(chan struct{})}, nil
}

// start runs w's informer until Run's context ends or the cluster is removed.
func (w *clusterWatch) start(ctx context.Context) {
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-w.stop:
		}
		close(stop)
	}()
	w.factory.Start(stop)
}

// AddCluster starts serving a cluster (a registration at run time). Its
// nodes enter the inventory as its informer lists them; once listed, entries
// of its nodes that no longer exist are removed. Adding a served cluster
// again replaces its client.
func (s *Syncer) AddCluster(name string, kc kubernetes.Interface) error {
	w, err := s.watch(name, kc)
	if err != nil {
		return err
	}
	s.cmu.Lock()
	old := s.clusters[name]
	s.clusters[name] = w
	ctx := s.runCtx
	s.cmu.Unlock()
	if old != nil {
		close(old.stop)
		old.factory.Shutdown()
	}
	if ctx != nil {
		w.start(ctx)
		go s.sweepWhenSynced(ctx, name, w)
	}
	return nil
}

// RemoveCluster stops serving a cluster and removes its nodes from the
// inventory (announcing each deletion).
func (s *Syncer) RemoveCluster(ctx context.Context, name string) error {
	s.cmu.Lock()
	w := s.clusters[name]
	delete(s.clusters, name)
	s.cmu.Unlock()
	if w != nil {
		close(w.stop)
		w.factory.Shutdown()
	}
	return s.sweep(ctx, name, nil)
}

func (s *Syncer) cluster(name string) (*clusterWatch, bool) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	w, ok := s.clusters[name]
	return w, ok
}

// sweepWhenSynced waits for a late cluster's first list, then removes the
// entries of its nodes that vanished meanwhile.
func (s *Syncer) sweepWhenSynced(ctx context.Context, name string, w *clusterWatch) {
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-w.stop:
		}
		close(stop)
	}()
	if !cache.WaitForCacheSync(stop, w.synced) {
		return
	}
	nodes, err := w.lister.List(labels.Everything())
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, n := range nodes {
		keep[events.NodeKey(name, n.Name)] = true
	}
	if err := s.sweep(ctx, name, keep); err != nil && ctx.Err() == nil {
		s.cfg.Log.Warn("sweep inventory of cluster", logkey.Cluster, name, logkey.Err, err)
	}
}

// sweep removes the inventory entries of cluster whose keys keep lacks.
func (s *Syncer) sweep(ctx context.Context, cluster string, keep map[string]bool) error {
	keys, err := s.cfg.KV.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list inventory keys: %w", err)
	}
	var errs []error
	for _, key := range keys {
		if strings.HasPrefix(key, cluster+".") && !keep[key] {
			errs = append(errs, retry(ctx, func() error { return s.removeKey(ctx, key) }))
		}
	}
	return errors.Join(errs...)
}

// Run starts the informers, waits until they have synced, brings the KV in
// line with them (nodes that vanished while the service was down are
// deleted, and so are nodes of clusters no longer served), calls synced, and
// then follows changes until ctx ends. It returns nil when ctx ends, and an
// error only when the first reconciliation fails.
func (s *Syncer) Run(ctx context.Context, synced func()) error {
	ctx, cancel := context.WithCancel(ctx)
	s.cmu.Lock()
	s.runCtx = ctx
	started := maps.Clone(s.clusters)
	for _, c := range started {
		c.start(ctx)
	}
	s.cmu.Unlock()
	defer func() {
		cancel()
		s.queue.ShutDown()
		s.cmu.Lock()
		defer s.cmu.Unlock()
		for _, c := range s.clusters {
			c.factory.Shutdown() // waits for the informer goroutines
		}
	}()
	// Wait for every cluster's first list, but not for ever: an unreachable
	// cluster must not keep the others out of service.
	late := map[string]bool{}
	deadline := time.Now().Add(s.cfg.SyncTimeout)
	for name, c := range started {
		wctx, wcancel := context.WithDeadline(ctx, deadline)
		ok := cache.WaitForCacheSync(wctx.Done(), c.synced)
		wcancel()
		if ctx.Err() != nil {
			return nil
		}
		if !ok {
			late[name] = true
			s.cfg.Log.Warn("cluster not listed in time; serving it once it answers", logkey.Cluster, name)
			go s.sweepWhenSynced(ctx, name, c)
		}
	}
	if err := s.reconcile(ctx, started, late); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if synced != nil {
		synced()
	}
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() {
			for s.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	s.queue.ShutDown()
	wg.Wait()
	return nil
}

// next handles one queued node; false once the queue is shut down.
func (s *Syncer) next(ctx context.Context) bool {
	ref, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(ref)
	if err := s.syncNode(ctx, ref); err != nil {
		if ctx.Err() == nil {
			s.cfg.Log.Warn("sync node; will retry", logkey.Cluster, ref.cluster, logkey.Node, ref.name, logkey.Err, err)
			s.queue.AddRateLimited(ref)
		}
		return true
	}
	s.queue.Forget(ref)
	return true
}

// reconcile syncs every node the informers list and deletes every KV entry
// with no node behind it, except those of the late clusters (not listed yet).
func (s *Syncer) reconcile(ctx context.Context, clusters map[string]*clusterWatch, late map[string]bool) error {
	want := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for cluster, c := range clusters {
		if late[cluster] {
			continue
		}
		nodes, err := c.lister.List(labels.Everything())
		if err != nil {
			return fmt.Errorf("list nodes of cluster %s: %w", cluster, err)
		}
		for _, n := range nodes {
			// A node without GPUs is still listed here: syncNode removes its
			// entry, so the sweep below must leave it alone.
			want[events.NodeKey(cluster, n.Name)] = true
			ref := nodeRef{cluster: cluster, name: n.Name}
			g.Go(func() error { return retry(gctx, func() error { return s.syncNode(gctx, ref) }) })
		}
	}
	keys, err := s.cfg.KV.Keys(gctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		_ = g.Wait()
		return fmt.Errorf("list inventory keys: %w", err)
	}
	for _, key := range keys {
		cluster, _, _ := strings.Cut(key, ".")
		if late[cluster] {
			continue
		}
		if _, listed := clusters[cluster]; !listed {
			if _, served := s.cluster(cluster); served {
				continue // added while this pass ran: its own sweep handles it
			}
		}
		if !want[key] {
			g.Go(func() error { return retry(gctx, func() error { return s.removeKey(gctx, key) }) })
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("reconcile inventory: %w", err)
	}
	return nil
}

// retry runs fn up to four times with a short pause, for the conflicts of
// replicas reconciling at once (a lost compare-and-set is settled by reading
// again).
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range 4 {
		if err = fn(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return err
}

// syncNode brings the entry of one node in line with the informer's view.
func (s *Syncer) syncNode(ctx context.Context, ref nodeRef) error {
	c, ok := s.cluster(ref.cluster)
	if !ok {
		return nil
	}
	key := events.NodeKey(ref.cluster, ref.name)
	obj, err := c.lister.Get(ref.name)
	if apierrors.IsNotFound(err) {
		return s.removeKey(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("get node %s from cache: %w", ref.name, err)
	}
	n, ok := inventory.FromNode(ref.cluster, obj, s.cfg.Now())
	if !ok {
		return s.removeKey(ctx, key) // lost its GPUs, or never had any
	}
	if old, ok := s.lookup(key); ok && inventory.Same(old, n) {
		return nil // status heartbeats and other changes that do not show
	}
	return s.upsert(ctx, key, n)
}

func (s *Syncer) upsert(ctx context.Context, key string, n events.Node) error {
	data, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode node %s: %w", key, err)
	}
	var rev uint64
	entry, err := s.cfg.KV.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = s.cfg.KV.Create(ctx, key, data)
	case err != nil:
		return fmt.Errorf("get inventory %s: %w", key, err)
	default:
		var old events.Node
		if json.Unmarshal(entry.Value(), &old) == nil && inventory.Same(old, n) {
			// Unchanged, but not seen by this process: maybe it crashed
			// between the write and the event. Announce it if it was not.
			if err := s.ensureAnnounced(ctx, old, entry.Revision()); err != nil {
				return err
			}
			s.remember(key, old)
			return nil
		}
		rev, err = s.cfg.KV.Update(ctx, key, data, entry.Revision())
	}
	if err != nil {
		return fmt.Errorf("write inventory %s: %w", key, err)
	}
	if err := s.publish(ctx, n, events.NodeUpdated, rev); err != nil {
		return err // retried: the KV now matches, so ensureAnnounced publishes
	}
	s.remember(key, n)
	return nil
}

// removeKey announces the deletion of the node behind key, then deletes the
// entry if it is still the revision announced. Announcing first means a
// crash in between is repaired by the next reconciliation, with the same id.
func (s *Syncer) removeKey(ctx context.Context, key string) error {
	entry, err := s.cfg.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get inventory %s: %w", key, err)
	}
	var old events.Node
	if err := json.Unmarshal(entry.Value(), &old); err != nil || old.Cluster == "" || old.Name == "" {
		cluster, node, _ := strings.Cut(key, ".")
		old = events.Node{Cluster: cluster, Name: node}
	}
	old.At = s.cfg.Now().UTC()
	if err := s.publish(ctx, old, events.NodeDeleted, entry.Revision()); err != nil {
		return err
	}
	if err := s.cfg.KV.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil {
		return fmt.Errorf("delete inventory %s: %w", key, err)
	}
	s.forget(key)
	return nil
}

// eventID is <cluster>.<node token>.<event>.<KV revision>: the same state
// change always gets the same id, so the stream drops a repeat.
func eventID(n events.Node, ev string, rev uint64) string {
	return events.NodeKey(n.Cluster, n.Name) + "." + ev + "." + strconv.FormatUint(rev, 10)
}

func (s *Syncer) publish(ctx context.Context, n events.Node, ev string, rev uint64) error {
	subject, err := events.InventorySubject(n.Cluster, n.Name, ev)
	if err != nil {
		return fmt.Errorf("inventory subject of %s/%s: %w", n.Cluster, n.Name, err)
	}
	e, err := bus.NewEvent(eventID(n, ev, rev), Source, events.EventType("inventory", ev),
		events.NodeKey(n.Cluster, n.Name), n.At, n)
	if err != nil {
		return err
	}
	return s.cfg.Pub.Publish(ctx, subject, e)
}

// ensureAnnounced publishes the updated event of revision rev unless it is
// the last one on the node's subject already.
func (s *Syncer) ensureAnnounced(ctx context.Context, n events.Node, rev uint64) error {
	subject, err := events.InventorySubject(n.Cluster, n.Name, events.NodeUpdated)
	if err != nil {
		return fmt.Errorf("inventory subject of %s/%s: %w", n.Cluster, n.Name, err)
	}
	msg, err := s.cfg.Stream.GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return fmt.Errorf("last event on %s: %w", subject, err)
	case msg.Header.Get(bus.HeaderID) == eventID(n, events.NodeUpdated, rev):
		return nil
	}
	return s.publish(ctx, n, events.NodeUpdated, rev)
}

func (s *Syncer) lookup(key string) (events.Node, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, ok := s.seen[key]
	return n, ok
}

func (s *Syncer) remember(key string, n events.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[key] = n
}

func (s *Syncer) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, key)
}

// List returns the inventory as this process last wrote or read it, sorted
// by cluster then node; only the given clusters when any are given.
func (s *Syncer) List(clusters []string) []events.Node {
	s.mu.RLock()
	out := make([]events.Node, 0, len(s.seen))
	for _, n := range s.seen {
		if len(clusters) == 0 || slices.Contains(clusters, n.Cluster) {
			n.Labels = maps.Clone(n.Labels)
			out = append(out, n)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b events.Node) int {
		if c := strings.Compare(a.Cluster, b.Cluster); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
