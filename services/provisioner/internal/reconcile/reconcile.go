// Package reconcile keeps every workspace's objects on every served real cluster
// in line with the workspaces bucket: a work queue of workspace names, fed by
// bucket changes and by a periodic full pass (which also finds the leftovers
// of workspaces that no longer exist, or no longer span a cluster). Each item
// is reconciled level-based on every cluster, so a restart at any point
// converges.
package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/provisioner/internal/clusters"
	"github.com/open-egs/egs/services/provisioner/internal/tenancy"
	"github.com/open-egs/egs/services/provisioner/internal/workspaces"
)

// fullPass is the queue key of the periodic pass over everything.
const fullPass = ""

// errNotLoaded: the workspaces bucket has not been read yet (the workspace
// service may not have declared it); the next pass tries again.
var errNotLoaded = errors.New("workspaces not loaded yet")

// Reconciler reconciles workspaces × clusters. Create it with New.
type Reconciler struct {
	clusters   *clusters.Registry
	workspaces *workspaces.Cache
	log        *slog.Logger
	interval   time.Duration
	queue      workqueue.TypedRateLimitingInterface[string]
}

// New returns a reconciler; interval is the period of the full pass.
func New(reg *clusters.Registry, ws *workspaces.Cache, log *slog.Logger, interval time.Duration) *Reconciler {
	return &Reconciler{
		clusters: reg, workspaces: ws, log: log, interval: interval,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "workspaces"}),
	}
}

// Enqueue asks for workspace name to be reconciled on every cluster.
func (r *Reconciler) Enqueue(name string) { r.queue.Add(name) }

// Resync asks for a full pass (a new cluster, a cluster back from an outage).
func (r *Reconciler) Resync() { r.queue.Add(fullPass) }

// Run works the queue with two workers until ctx ends; it returns nil.
func (r *Reconciler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for r.next(ctx) {
			}
		})
	}
	t := time.NewTicker(r.interval)
	defer t.Stop()
	r.Resync()
	for {
		select {
		case <-ctx.Done():
			r.queue.ShutDown()
			wg.Wait()
			return nil
		case <-t.C:
			r.Resync()
		}
	}
}

func (r *Reconciler) next(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	var err error
	if key == fullPass {
		err = r.all(ctx)
	} else {
		err = r.Workspace(ctx, key)
	}
	switch {
	case err == nil:
		r.queue.Forget(key)
	case ctx.Err() != nil:
	case errors.Is(err, errNotLoaded):
		r.queue.Forget(key) // the next full pass tries again
	case errors.Is(err, tenancy.ErrForeign):
		r.log.Warn("workspace objects blocked by objects EGS does not manage", logkey.Workspace, key, logkey.Err, err)
		r.queue.Forget(key) // the next full pass tries again
	default:
		r.log.Warn("reconcile workspace; will retry", logkey.Workspace, key, logkey.Err, err)
		r.queue.AddRateLimited(key)
	}
	return true
}

// all enqueues every workspace of the bucket and every workspace that has
// namespaces on a cluster (a deleted one's leftovers).
func (r *Reconciler) all(ctx context.Context) error {
	if !r.workspaces.Synced() {
		return errNotLoaded
	}
	for name := range r.workspaces.All() {
		r.Enqueue(name)
	}
	var errs []error
	for _, c := range r.clusters.List() {
		if c.Simulated {
			continue
		}
		found, err := tenancy.Namespaces(ctx, c.Client)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for name := range found {
			r.Enqueue(name)
		}
	}
	return errors.Join(errs...)
}

// Workspace reconciles workspace name on every cluster: the objects of a
// workspace that spans the cluster, nothing of one that does not (once the
// bucket is loaded: before, an absent workspace may just not be read yet).
func (r *Reconciler) Workspace(ctx context.Context, name string) error {
	w, ok := r.workspaces.Get(name)
	if !ok && !r.workspaces.Synced() {
		return errNotLoaded
	}
	var errs []error
	for _, c := range r.clusters.List() {
		if c.Simulated {
			continue
		}
		if ok && w.OnCluster(c.Name) {
			errs = append(errs, Ensure(ctx, c, w))
			continue
		}
		if err := tenancy.Delete(ctx, c.Client, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Ensure brings workspace w's objects on cluster c in line, with the quota at
// the GPUs w holds there, and deletes namespaces EGS made for w that w no
// longer lists. A simulated cluster gets nothing: no one could use it.
func Ensure(ctx context.Context, c *clusters.Cluster, w workspaces.Workspace) error {
	if c.Simulated {
		return nil
	}
	gpus, err := tenancy.HeldGPUs(ctx, c.Client, w.Name)
	if err != nil {
		return err
	}
	if err := tenancy.Ensure(ctx, c.Client, tenancy.Spec{Workspace: w.Name, Namespaces: w.Namespaces, GPUs: gpus}); err != nil {
		return err
	}
	have, err := tenancy.WorkspaceNamespaces(ctx, c.Client, w.Name)
	if err != nil {
		return err
	}
	var stale []string
	for _, ns := range have {
		if !slices.Contains(w.Namespaces, ns) {
			stale = append(stale, ns)
		}
	}
	return tenancy.DeleteNamespaces(ctx, c.Client, w.Name, stale)
}
