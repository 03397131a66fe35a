// Package podindex maps the UIDs of the pods bound to one node to their
// namespace and name, from the Kubernetes API server: one watch of the
// node's pods (field selector spec.nodeName), holding only their names.
// The node agent finds a GPU process's pod UID in /proc/<pid>/cgroup; this
// index supplies the rest.
package podindex

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Index is the pods of one node by UID. Its methods are safe for
// concurrent use.
type Index struct {
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	done     chan struct{}
}

const byUID = "uid"

// Start watches the pods bound to node until Stop; Lookup answers from what
// the watch has seen (nothing before the first list). Failures of the list
// or watch (a missing role, say) are logged on log and retried with backoff.
func Start(cs kubernetes.Interface, node string, log *slog.Logger) *Index {
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := factory.Core().V1().Pods().Informer()
	// Keep names only: a node's pods, not their specs and statuses.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID,
				ResourceVersion: p.ResourceVersion}}, nil
		}
		return obj, nil
	})
	_ = inf.AddIndexers(cache.Indexers{byUID: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			return []string{string(p.UID)}, nil
		}
		return nil, nil
	}})
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		log.Warn("watch the node's pods (GPU processes keep pod UIDs only meanwhile)", "node", node, "err", err)
	})
	ctx, cancel := context.WithCancel(context.Background())
	x := &Index{informer: inf, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(x.done)
		inf.RunWithContext(ctx)
	}()
	return x
}

// WaitSynced waits until the first list has been seen or ctx ends, and
// reports which.
func (x *Index) WaitSynced(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), x.informer.HasSynced)
}

// Lookup returns the namespace and name of the pod with uid, or empty
// strings when the node runs no such pod (as far as the watch has seen).
func (x *Index) Lookup(uid string) (namespace, name string) {
	objs, err := x.informer.GetIndexer().ByIndex(byUID, uid)
	if err != nil || len(objs) == 0 {
		return "", ""
	}
	p := objs[0].(*corev1.Pod)
	return p.Namespace, p.Name
}

// Stop ends the watch and waits for it.
func (x *Index) Stop() {
	x.cancel()
	<-x.done
}
