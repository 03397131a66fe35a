// Package inventory turns Kubernetes nodes into the GPU inventory: the
// events.Node of each GPU node, kept in the inventory KV bucket and announced
// on the inventory stream whenever it changes.
package inventory

import (
	"maps"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/open-egs/egs/libs/events"
)

// Well-known node labels and resources. The nvidia.com ones are written by
// NVIDIA GPU feature discovery, the egs.io ones by the provisioner.
const (
	ResourceGPU       corev1.ResourceName = "nvidia.com/gpu"
	LabelGPUProduct                       = "nvidia.com/gpu.product"
	LabelGPUMemory                        = "nvidia.com/gpu.memory" // MiB per GPU
	LabelGPUCount                         = "nvidia.com/gpu.count"
	LabelInstanceType                     = corev1.LabelInstanceTypeStable // node.kubernetes.io/instance-type
	LabelRegion                           = corev1.LabelTopologyRegion     // topology.kubernetes.io/region
	LabelManaged                          = "egs.io/managed"
	LabelWorkspace                        = "egs.io/workspace"
	LabelGPR                              = "egs.io/gpr"
	// TaintWorkspace keeps other workloads off a node handed to a workspace;
	// its value is the workspace and its effect NoSchedule.
	TaintWorkspace = "egs.io/workspace"
)

// FromNode describes node n of cluster as an inventory entry stamped at. ok is
// false when the node has no nvidia.com/gpu capacity: it is not inventory.
func FromNode(cluster string, n *corev1.Node, at time.Time) (node events.Node, ok bool) {
	q, has := n.Status.Capacity[ResourceGPU]
	if !has || q.Value() <= 0 {
		return events.Node{}, false
	}
	labels := n.Labels
	node = events.Node{
		Cluster:       cluster,
		Name:          n.Name,
		InstanceType:  labels[LabelInstanceType],
		GPUProduct:    labels[LabelGPUProduct],
		GPUMemoryGB:   memoryGB(labels[LabelGPUMemory]),
		GPUCount:      int(q.Value()),
		Managed:       labels[LabelManaged] != "false",
		Ready:         ready(n),
		Unschedulable: n.Spec.Unschedulable || conditionTainted(n),
		CloudProvider: CloudProvider(n.Spec.ProviderID),
		Region:        labels[LabelRegion],
		Workspace:     labels[LabelWorkspace],
		GPRID:         labels[LabelGPR],
		At:            at.UTC(),
	}
	if len(labels) > 0 {
		node.Labels = maps.Clone(labels)
	}
	return node, true
}

// Same reports whether a and b describe the same state, ignoring when each
// was observed.
func Same(a, b events.Node) bool {
	la, lb := a.Labels, b.Labels
	a.At, b.At = time.Time{}, time.Time{}
	a.Labels, b.Labels = nil, nil
	return reflect.DeepEqual(a, b) && maps.Equal(la, lb)
}

// memoryGB converts the MiB of the gpu.memory label to whole GB (GiB),
// rounded to nearest; 0 when the label is missing or malformed.
func memoryGB(mib string) int {
	v, err := strconv.ParseFloat(mib, 64)
	if err != nil || v <= 0 {
		return 0
	}
	return int(math.Round(v / 1024))
}

// conditionTainted reports whether the node carries a NoSchedule or
// NoExecute taint that Kubernetes or the cloud provider put there for its
// condition (node.kubernetes.io/not-ready, unreachable, memory-pressure,
// unschedulable, node.cloudprovider.kubernetes.io/uninitialized, ...): no new
// pod lands there, so it takes no new work. Other taints (the workspace's,
// nvidia.com/gpu) are tolerated by the pods meant for the node.
func conditionTainted(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") || strings.HasPrefix(t.Key, "node.cloudprovider.kubernetes.io/") {
			return true
		}
	}
	return false
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// CloudProvider names the cloud of a node from its providerID scheme
// ("aws:///eu-west-1a/i-0abc" is aws, "gce://..." is gcp); "" when unknown.
func CloudProvider(providerID string) string {
	scheme, _, found := strings.Cut(providerID, "://")
	if !found {
		return ""
	}
	switch scheme {
	case "gce":
		return "gcp"
	case "":
		return ""
	default:
		return scheme
	}
}
