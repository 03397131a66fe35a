package handover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// ErrEvictionBlocked is returned by Evict while a PodDisruptionBudget refuses
// an eviction and the deadline has not passed: retry later.
var ErrEvictionBlocked = errors.New("eviction blocked by a PodDisruptionBudget")

// Eviction says how Evict treats pods a PodDisruptionBudget protects.
type Eviction struct {
	// Deadline is when protection ends: from then on a refused eviction is
	// followed by a plain delete. The zero time deletes at once.
	Deadline time.Time
	// Wait is how long Evict retries refused evictions itself before it
	// returns ErrEvictionBlocked (bounded by ctx and Deadline).
	Wait time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Pods lists the running or pending pods on the given nodes whose namespace
// is one of namespaces, skipping pods already being deleted.
func Pods(ctx context.Context, kc kubernetes.Interface, nodes, namespaces []string) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, node := range nodes {
		list, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
		if err != nil {
			return nil, fmt.Errorf("list pods on node %s: %w", node, err)
		}
		for _, p := range list.Items {
			switch {
			case p.Spec.NodeName != node, // fake clientsets ignore field selectors
				!slices.Contains(namespaces, p.Namespace),
				p.DeletionTimestamp != nil,
				p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
				continue
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// Evict asks the Eviction API to evict every pod of the given namespaces on
// the given nodes, so PodDisruptionBudgets are respected; after e.Deadline
// a pod whose eviction is still refused is deleted. It returns nil once every
// such pod is gone or being deleted, ErrEvictionBlocked (wrapped) when some
// are still protected at the end of e.Wait, or another error to retry.
func Evict(ctx context.Context, kc kubernetes.Interface, nodes, namespaces []string, e Eviction) error {
	if e.Now == nil {
		e.Now = time.Now
	}
	stop := e.Now().Add(e.Wait)
	for {
		pods, err := Pods(ctx, kc, nodes, namespaces)
		if err != nil {
			return err
		}
		blocked := 0
		for _, p := range pods {
			refused, err := evictOne(ctx, kc, p, !e.Now().Before(e.Deadline))
			if err != nil {
				return err
			}
			if refused {
				blocked++
			}
		}
		if blocked == 0 {
			return nil
		}
		now := e.Now()
		if !now.Before(stop) || now.Add(500*time.Millisecond).After(ctxDeadline(ctx, stop)) {
			return fmt.Errorf("%d pod(s) of the nodes %v, until %s: %w", blocked, nodes, e.Deadline.UTC().Format(time.RFC3339), ErrEvictionBlocked)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func ctxDeadline(ctx context.Context, fallback time.Time) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return fallback
}

// evictOne evicts p, or deletes it when force; refused is true when a
// PodDisruptionBudget refused the eviction.
func evictOne(ctx context.Context, kc kubernetes.Interface, p corev1.Pod, force bool) (refused bool, err error) {
	uid := p.UID
	pre := &metav1.Preconditions{UID: &uid}
	err = kc.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: pre},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err): // evicted, gone, or replaced by another pod
		return false, nil
	case apierrors.IsTooManyRequests(err):
		if !force {
			return true, nil
		}
		err = kc.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: pre})
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return false, nil
		}
		return false, fmt.Errorf("delete pod %s/%s after the eviction deadline: %w", p.Namespace, p.Name, err)
	default:
		return false, fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
	}
}
