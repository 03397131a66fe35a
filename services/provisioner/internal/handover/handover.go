// Package handover hands Kubernetes nodes over to a workspace and takes them
// back: the egs.io/workspace and egs.io/gpr labels and the
// egs.io/workspace=<ws>:NoSchedule taint. Both directions are idempotent, so
// a redelivered command is harmless.
package handover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/open-egs/egs/services/provisioner/internal/inventory"
)

// Domain errors. Both are permanent: retrying the same command cannot succeed.
var (
	// ErrNodeNotFound is returned by Apply for a node the cluster does not have.
	ErrNodeNotFound = errors.New("node not found")
	// ErrConflict is returned by Apply for a node another GPR holds.
	ErrConflict = errors.New("node held by another gpr")
)

// Grant identifies whom nodes are handed to.
type Grant struct {
	Workspace string
	GPRID     string
}

// Apply labels and taints every node for g. It checks all nodes before
// changing any, so a conflict or a missing node changes nothing; nodes that
// already carry the grant are left alone. An error that wraps neither domain
// error is transient (the API server, a concurrent change).
func Apply(ctx context.Context, kc kubernetes.Interface, g Grant, nodes []string) error {
	got := make([]*corev1.Node, 0, len(nodes))
	for _, name := range nodes {
		n, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("node %s: %w", name, ErrNodeNotFound)
		}
		if err != nil {
			return fmt.Errorf("get node %s: %w", name, err)
		}
		if held := n.Labels[inventory.LabelGPR]; held != "" && held != g.GPRID {
			return fmt.Errorf("node %s: %w %s", name, ErrConflict, held)
		}
		got = append(got, n)
	}
	for _, n := range got {
		if err := patch(ctx, kc, n, applyOps(n, g)); err != nil {
			return err
		}
	}
	return nil
}

// Remove takes the grant off every node that carries g's gpr label. A node
// that no longer exists or is held by someone else is skipped: it is not g's
// any more.
func Remove(ctx context.Context, kc kubernetes.Interface, g Grant, nodes []string) error {
	for _, name := range nodes {
		n, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get node %s: %w", name, err)
		}
		if n.Labels[inventory.LabelGPR] != g.GPRID {
			continue
		}
		if err := patch(ctx, kc, n, removeOps(n, g)); err != nil {
			return err
		}
	}
	return nil
}

// op is one RFC 6902 JSON patch operation.
type op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// patch sends ops as one JSON patch, so each node changes atomically.
func patch(ctx context.Context, kc kubernetes.Interface, n *corev1.Node, ops []op) error {
	if len(ops) == 0 {
		return nil
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encode patch of node %s: %w", n.Name, err)
	}
	if _, err := kc.CoreV1().Nodes().Patch(ctx, n.Name, types.JSONPatchType, body, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch node %s: %w", n.Name, err)
	}
	return nil
}

func workspaceTaint(ws string) corev1.Taint {
	return corev1.Taint{Key: inventory.TaintWorkspace, Value: ws, Effect: corev1.TaintEffectNoSchedule}
}

func isWorkspaceTaint(t corev1.Taint) bool {
	return t.Key == inventory.TaintWorkspace && t.Effect == corev1.TaintEffectNoSchedule
}

// applyOps are the operations that bring n to carry g, none when it does.
// A workspace taint of another value (a leftover) is replaced, never doubled.
func applyOps(n *corev1.Node, g Grant) []op {
	var ops []op
	want := map[string]string{inventory.LabelWorkspace: g.Workspace, inventory.LabelGPR: g.GPRID}
	if n.Labels == nil {
		ops = append(ops, op{Op: "add", Path: "/metadata/labels", Value: want})
	} else {
		for _, k := range []string{inventory.LabelWorkspace, inventory.LabelGPR} {
			if v, ok := n.Labels[k]; !ok || v != want[k] {
				ops = append(ops, op{Op: "add", Path: "/metadata/labels/" + pointerEscape(k), Value: want[k]})
			}
		}
	}
	taint := workspaceTaint(g.Workspace)
	var kept []corev1.Taint
	has := false
	for _, t := range n.Spec.Taints {
		switch {
		case t.MatchTaint(&taint) && t.Value == taint.Value && !has:
			has = true
			kept = append(kept, t)
		case isWorkspaceTaint(t):
			// a stale or duplicate workspace taint: drop it
		default:
			kept = append(kept, t)
		}
	}
	switch {
	case has && len(kept) == len(n.Spec.Taints):
	case len(n.Spec.Taints) == 0:
		ops = append(ops, op{Op: "add", Path: "/spec/taints", Value: []corev1.Taint{taint}})
	default:
		if !has {
			kept = append(kept, taint)
		}
		ops = append(ops, replaceTaints(n.Spec.Taints, kept)...)
	}
	return ops
}

// removeOps take g's labels and workspace taint off n.
func removeOps(n *corev1.Node, g Grant) []op {
	var ops []op
	for _, k := range []string{inventory.LabelWorkspace, inventory.LabelGPR} {
		if _, ok := n.Labels[k]; ok {
			ops = append(ops, op{Op: "remove", Path: "/metadata/labels/" + pointerEscape(k)})
		}
	}
	var kept []corev1.Taint
	for _, t := range n.Spec.Taints {
		if !isWorkspaceTaint(t) {
			kept = append(kept, t)
		}
	}
	if len(kept) != len(n.Spec.Taints) {
		ops = append(ops, replaceTaints(n.Spec.Taints, kept)...)
	}
	return ops
}

// replaceTaints swaps the taint list, guarded by a test of the list read, so
// a taint another controller added meanwhile is never lost: the patch fails
// and the command is retried on fresh state.
func replaceTaints(old, taints []corev1.Taint) []op {
	if taints == nil {
		taints = []corev1.Taint{}
	}
	return []op{
		{Op: "test", Path: "/spec/taints", Value: old},
		{Op: "replace", Path: "/spec/taints", Value: taints},
	}
}

// pointerEscape escapes a map key for a JSON pointer (RFC 6901).
func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
