package handover_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/open-egs/egs/services/provisioner/internal/handover"
	"github.com/open-egs/egs/services/provisioner/internal/inventory"
)

var (
	grant   = handover.Grant{Workspace: "team-a", GPRID: "gpr-1"}
	wsTaint = corev1.Taint{Key: inventory.TaintWorkspace, Value: "team-a", Effect: corev1.TaintEffectNoSchedule}
	other   = corev1.Taint{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}
)

func node(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

type state struct {
	Labels map[string]string
	Taints []corev1.Taint
}

func get(t *testing.T, kc kubernetes.Interface, name string) state {
	t.Helper()
	n, err := kc.CoreV1().Nodes().Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get node %s: %v", name, err)
	}
	return state{Labels: n.Labels, Taints: n.Spec.Taints}
}

func TestApply(t *testing.T) {
	held := map[string]string{"a": "1", inventory.LabelWorkspace: "team-a", inventory.LabelGPR: "gpr-1"}
	tests := map[string]struct {
		node  *corev1.Node
		times int
		want  state
	}{
		"bare node": {node: node("n1", nil), times: 1,
			want: state{Labels: map[string]string{inventory.LabelWorkspace: "team-a", inventory.LabelGPR: "gpr-1"}, Taints: []corev1.Taint{wsTaint}}},
		"twice: one label and one taint each": {node: node("n1", map[string]string{"a": "1"}), times: 2,
			want: state{Labels: held, Taints: []corev1.Taint{wsTaint}}},
		"keeps other taints": {node: node("n1", map[string]string{"a": "1"}, other), times: 3,
			want: state{Labels: held, Taints: []corev1.Taint{other, wsTaint}}},
		"already handed over": {node: node("n1", held, other, wsTaint), times: 1,
			want: state{Labels: held, Taints: []corev1.Taint{other, wsTaint}}},
		"replaces a stale workspace taint": {node: node("n1", map[string]string{"a": "1"},
			corev1.Taint{Key: inventory.TaintWorkspace, Value: "old", Effect: corev1.TaintEffectNoSchedule}, other), times: 1,
			want: state{Labels: held, Taints: []corev1.Taint{other, wsTaint}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kc := fake.NewClientset(tc.node)
			for range tc.times {
				if err := handover.Apply(ctx(t), kc, grant, []string{"n1"}); err != nil {
					t.Fatalf("Apply: %v", err)
				}
			}
			if diff := cmp.Diff(tc.want, get(t, kc, "n1")); diff != "" {
				t.Errorf("node after apply (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyRefused(t *testing.T) {
	tests := map[string]struct {
		nodes   []string
		wantErr error
	}{
		"held by another gpr": {nodes: []string{"free", "taken"}, wantErr: handover.ErrConflict},
		"missing node":        {nodes: []string{"free", "gone"}, wantErr: handover.ErrNodeNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kc := fake.NewClientset(node("free", nil),
				node("taken", map[string]string{inventory.LabelWorkspace: "team-b", inventory.LabelGPR: "gpr-2"}))
			err := handover.Apply(ctx(t), kc, grant, tc.nodes)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Apply error = %v, want %v", err, tc.wantErr)
			}
			if got := get(t, kc, "free"); len(got.Labels) != 0 || len(got.Taints) != 0 {
				t.Errorf("refused apply changed node free: %+v", got)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	held := map[string]string{"a": "1", inventory.LabelWorkspace: "team-a", inventory.LabelGPR: "gpr-1"}
	tests := map[string]struct {
		node  *corev1.Node
		nodes []string
		want  state
	}{
		"takes the grant off": {node: node("n1", held, other, wsTaint), nodes: []string{"n1"},
			want: state{Labels: map[string]string{"a": "1"}, Taints: []corev1.Taint{other}}},
		"only taint": {node: node("n1", held, wsTaint), nodes: []string{"n1"},
			want: state{Labels: map[string]string{"a": "1"}, Taints: []corev1.Taint{}}},
		"missing node is fine": {node: node("n1", held, wsTaint), nodes: []string{"gone", "n1"},
			want: state{Labels: map[string]string{"a": "1"}, Taints: []corev1.Taint{}}},
		"another gpr's node is left alone": {
			node:  node("n1", map[string]string{inventory.LabelWorkspace: "team-b", inventory.LabelGPR: "gpr-2"}, other),
			nodes: []string{"n1"},
			want:  state{Labels: map[string]string{inventory.LabelWorkspace: "team-b", inventory.LabelGPR: "gpr-2"}, Taints: []corev1.Taint{other}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kc := fake.NewClientset(tc.node)
			for range 2 { // idempotent
				if err := handover.Remove(ctx(t), kc, grant, tc.nodes); err != nil {
					t.Fatalf("Remove: %v", err)
				}
			}
			got := get(t, kc, "n1")
			if diff := cmp.Diff(tc.want, got, cmpEmpty); diff != "" {
				t.Errorf("node after remove (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats nil and empty taint lists alike.
var cmpEmpty = cmp.Transformer("taints", func(ts []corev1.Taint) []corev1.Taint {
	if len(ts) == 0 {
		return nil
	}
	return ts
})
