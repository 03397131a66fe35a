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
}

type nodeRef struct{ cluster, name string }

type clusterWatch struct {
	factory informers.SharedInformerFactory
	lister  listersv1.NodeLister
	synced  cache.InformerSynced
}

// Syncer mirrors the GPU nodes of the clusters into the inventory. Create it
// with New and run it with Run; List is safe for concurrent use.
type Syncer struct {
	cfg      Config
	clusters map[string]*clusterWatch
	queue    workqueue.TypedRateLimitingInterface[nodeRef]

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
	for name, kc := range cfg.Clusters {
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
		s.clusters[name] = &clusterWatch{factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced}
	}
	return s, nil
}

// Run starts the informers, waits until they have synced, brings the KV in
// line with them (nodes that vanished while the service was down are
// deleted, and so are nodes of clusters no longer served), calls synced, and
// then follows changes until ctx ends. It returns nil when ctx ends, and an
// error only when the first reconciliation fails.
func (s *Syncer) Run(ctx context.Context, synced func()) error {
	ctx, cancel := context.WithCancel(ctx)
	for _, c := range s.clusters {
		c.factory.Start(ctx.Done())
	}
	defer func() {
		cancel()
		s.queue.ShutDown()
		for _, c := range s.clusters {
			c.factory.Shutdown() // waits for the informer goroutines
		}
	}()
	var waits []cache.InformerSynced
	for _, c := range s.clusters {
		waits = append(waits, c.synced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), waits...) {
		return nil // ctx ended first
	}
	if err := s.reconcile(ctx); err != nil {
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
// with no node behind it.
func (s *Syncer) reconcile(ctx context.Context) error {
	want := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for cluster, c := range s.clusters {
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
	c, ok := s.clusters[ref.cluster]
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
