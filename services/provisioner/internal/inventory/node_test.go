package inventory_test

import (
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/provisioner/internal/inventory"
)

// nodeBuilder builds test nodes fluently.
type nodeBuilder struct{ n *corev1.Node }

func gpuNode(name string, gpus int64) nodeBuilder {
	return nodeBuilder{&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			inventory.LabelInstanceType: "p5.48xlarge",
			inventory.LabelGPUProduct:   "NVIDIA-H100-80GB-HBM3",
			inventory.LabelGPUMemory:    "81559",
			inventory.LabelRegion:       "us-east-1",
		}},
		Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-0123"},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{inventory.ResourceGPU: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}}
}

func (b nodeBuilder) label(k, v string) nodeBuilder { b.n.Labels[k] = v; return b }
func (b nodeBuilder) ready(s corev1.ConditionStatus) nodeBuilder {
	b.n.Status.Conditions[0].Status = s
	return b
}
func (b nodeBuilder) cordoned() nodeBuilder { b.n.Spec.Unschedulable = true; return b }
func (b nodeBuilder) taint(key string, effect corev1.TaintEffect) nodeBuilder {
	b.n.Spec.Taints = append(b.n.Spec.Taints, corev1.Taint{Key: key, Effect: effect})
	return b
}
func (b nodeBuilder) provider(id string) nodeBuilder { b.n.Spec.ProviderID = id; return b }

func TestFromNode(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	base := events.Node{
		Cluster: "worker-1", Name: "n1", InstanceType: "p5.48xlarge", GPUProduct: "NVIDIA-H100-80GB-HBM3",
		GPUMemoryGB: 80, GPUCount: 8, Managed: true, Ready: true, CloudProvider: "aws", Region: "us-east-1", At: at,
	}
	with := func(f func(*events.Node)) *events.Node { n := base; f(&n); return &n }
	tests := map[string]struct {
		node *corev1.Node
		want *events.Node // nil: not inventory
	}{
		"gpu node": {node: gpuNode("n1", 8).n, want: &base},
		"no gpus":  {node: gpuNode("n1", 0).n},
		"not a gpu node": {node: func() *corev1.Node {
			n := gpuNode("n1", 8).n
			n.Status.Capacity = corev1.ResourceList{}
			return n
		}()},
		"unmanaged":    {node: gpuNode("n1", 8).label(inventory.LabelManaged, "false").n, want: with(func(n *events.Node) { n.Managed = false })},
		"managed true": {node: gpuNode("n1", 8).label(inventory.LabelManaged, "true").n, want: &base},
		"handed over": {node: gpuNode("n1", 8).label(inventory.LabelWorkspace, "ws").label(inventory.LabelGPR, "gpr-1").n,
			want: with(func(n *events.Node) { n.Workspace, n.GPRID = "ws", "gpr-1" })},
		"not ready": {node: gpuNode("n1", 8).ready(corev1.ConditionFalse).n, want: with(func(n *events.Node) { n.Ready = false })},
		"cordoned":  {node: gpuNode("n1", 8).cordoned().n, want: with(func(n *events.Node) { n.Unschedulable = true })},
		"condition taint": {node: gpuNode("n1", 8).taint(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute).n,
			want: with(func(n *events.Node) { n.Unschedulable = true })},
		"uninitialized": {node: gpuNode("n1", 8).taint("node.cloudprovider.kubernetes.io/uninitialized", corev1.TaintEffectNoSchedule).n,
			want: with(func(n *events.Node) { n.Unschedulable = true })},
		"gpu and workspace taints": {node: gpuNode("n1", 8).taint("nvidia.com/gpu", corev1.TaintEffectNoSchedule).
			taint(inventory.TaintWorkspace, corev1.TaintEffectNoSchedule).n, want: &base},
		"prefer no schedule": {node: gpuNode("n1", 8).taint(corev1.TaintNodeMemoryPressure, corev1.TaintEffectPreferNoSchedule).n, want: &base},
		"gce":                {node: gpuNode("n1", 8).provider("gce://p/us-central1-a/n1").n, want: with(func(n *events.Node) { n.CloudProvider = "gcp" })},
		"no provider":        {node: gpuNode("n1", 8).provider("").n, want: with(func(n *events.Node) { n.CloudProvider = "" })},
		"memory rounds":      {node: gpuNode("n1", 8).label(inventory.LabelGPUMemory, "15360").n, want: with(func(n *events.Node) { n.GPUMemoryGB = 15 })},
		"bad memory":         {node: gpuNode("n1", 8).label(inventory.LabelGPUMemory, "lots").n, want: with(func(n *events.Node) { n.GPUMemoryGB = 0 })},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := inventory.FromNode("worker-1", tc.node, at)
			if tc.want == nil {
				if ok {
					t.Fatalf("FromNode = %+v, want not inventory", got)
				}
				return
			}
			if !ok {
				t.Fatal("FromNode: not inventory, want a node")
			}
			if diff := cmp.Diff(tc.node.Labels, got.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			got.Labels = nil
			if diff := cmp.Diff(*tc.want, got); diff != "" {
				t.Errorf("FromNode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSame(t *testing.T) {
	a, _ := inventory.FromNode("c", gpuNode("n", 8).n, time.Unix(1, 0))
	tests := map[string]struct {
		change func(*events.Node)
		want   bool
	}{
		"only time":   {change: func(n *events.Node) { n.At = time.Unix(99, 0) }, want: true},
		"ready":       {change: func(n *events.Node) { n.Ready = false }},
		"label":       {change: func(n *events.Node) { n.Labels = map[string]string{"x": "y"} }},
		"no labels":   {change: func(n *events.Node) { n.Labels = nil }},
		"gpr":         {change: func(n *events.Node) { n.GPRID = "gpr-1" }},
		"same labels": {change: func(n *events.Node) { n.Labels = maps.Clone(a.Labels) }, want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := a
			tc.change(&b)
			if got := inventory.Same(a, b); got != tc.want {
				t.Errorf("Same = %v, want %v", got, tc.want)
			}
		})
	}
}
