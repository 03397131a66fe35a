package egs

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// Node states (gpuNodeStatus and gpuNodeState carry the same value, D7) and
// health values of the inventory list (§5.1).
const (
	NodeAvailable   = "NODE_AVAILABLE"   // healthy, no GPU allocated
	NodeReserved    = "NODE_RESERVED"    // held by a GPR or handed to a workspace
	NodeUnavailable = "NODE_UNAVAILABLE" // not healthy and not held

	HealthHealthy       = "Healthy"
	HealthUnhealthy     = "Unhealthy"
	HealthUnschedulable = "Unschedulable"
)

// Inventory is the data of GET /api/v1/inventory/list. Both arrays are always
// sent; the obsolete data.items never is (D6).
type Inventory struct {
	ManagedNodes   []Node `json:"managedNodes"`
	UnmanagedNodes []Node `json:"unmanagedNodes"`
}

// Node is one GPU node of the inventory list, with every key of §5.1.
type Node struct {
	GPUNodeName       string           `json:"gpuNodeName"`
	ClusterName       string           `json:"clusterName"`
	InstanceType      string           `json:"instanceType"`
	GPUShape          string           `json:"gpuShape"`     // the instance type (D7)
	GPUModelName      string           `json:"gpuModelName"` // the GPU model
	Memory            int              `json:"memory"`
	GPUCount          int              `json:"gpuCount"`
	AvailableGPUs     int              `json:"availableGPUs"`
	GPUTempThreshold  string           `json:"gpuTempThreshold"`
	GPUPowerThreshold string           `json:"gpuPowerThreshold"`
	CloudProvider     string           `json:"cloudProvider"`
	Cloud             string           `json:"cloud"`
	Region            string           `json:"region"`
	NodeHealth        string           `json:"nodeHealth"`
	GPUNodeStatus     string           `json:"gpuNodeStatus"`
	GPUNodeState      string           `json:"gpuNodeState"`
	Allocation        []Allocation     `json:"allocation"`
	GPUSlicingProfile []SlicingProfile `json:"gpuSlicingProfile"`
}

// Allocation is one GPR's hold on a node.
type Allocation struct {
	GPRName             string    `json:"gprName"`
	SliceName           string    `json:"sliceName"`
	TotalGPUsAllocated  int       `json:"totalGPUsAllocated"`
	AllocationTimeStamp Timestamp `json:"allocationTimeStamp"`
}

// Timestamp is the protobuf-style timestamp of an allocation: seconds as a
// string, nanos as a number.
type Timestamp struct {
	Seconds string `json:"seconds"`
	Nanos   int    `json:"nanos"`
}

// SlicingProfile is a GPU slicing (MIG) profile. We hand out whole GPUs, so
// lists of them are always empty; the type pins the wire shape.
type SlicingProfile struct {
	ProfileName   string `json:"profileName"`
	Memory        int    `json:"memory"`
	TotalGPUs     int    `json:"totalGpus"`
	DeviceName    string `json:"deviceName"`
	AvailableGPUs int    `json:"availableGpus"`
	MemoryPerGPU  int    `json:"memoryPerGpu"`
	GPUsPerNode   int    `json:"gpusPerNode"`
}

// BuildInventory joins the provisioner's nodes with the scheduler's
// allocation ledger. Nodes keep the provisioner's order; a node's
// allocations are sorted by time, then GPR.
func BuildInventory(nodes []events.Node, allocs []rpc.Allocation) Inventory {
	type key struct{ cluster, node string }
	byNode := map[key][]rpc.Allocation{}
	for _, a := range allocs {
		k := key{a.Cluster, events.NodeToken(a.Node)}
		byNode[k] = append(byNode[k], a)
	}
	inv := Inventory{ManagedNodes: []Node{}, UnmanagedNodes: []Node{}}
	for _, n := range nodes {
		out := fromNode(n, byNode[key{n.Cluster, events.NodeToken(n.Name)}])
		if n.Managed {
			inv.ManagedNodes = append(inv.ManagedNodes, out)
		} else {
			inv.UnmanagedNodes = append(inv.UnmanagedNodes, out)
		}
	}
	return inv
}

// OnlyWorkspace returns inv with each node's allocation list cut down to the
// entries of workspace ws, so a caller bound to ws learns nothing of other
// workspaces' GPRs. Node counts and states (availableGPUs, gpuNodeStatus)
// are kept as they are: they describe the node, whoever holds it.
func (inv Inventory) OnlyWorkspace(ws string) Inventory {
	return Inventory{ManagedNodes: onlyWorkspace(inv.ManagedNodes, ws), UnmanagedNodes: onlyWorkspace(inv.UnmanagedNodes, ws)}
}

// OnlyWorkspaces is OnlyWorkspace for a caller of several workspaces: the
// allocations of the workspaces allowed reports true for are kept.
func (inv Inventory) OnlyWorkspaces(allowed func(ws string) bool) Inventory {
	return Inventory{ManagedNodes: onlyWorkspaces(inv.ManagedNodes, allowed),
		UnmanagedNodes: onlyWorkspaces(inv.UnmanagedNodes, allowed)}
}

func onlyWorkspace(nodes []Node, ws string) []Node {
	return onlyWorkspaces(nodes, func(w string) bool { return w == ws })
}

func onlyWorkspaces(nodes []Node, allowed func(ws string) bool) []Node {
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		own := make([]Allocation, 0, len(n.Allocation))
		for _, a := range n.Allocation {
			if allowed(a.SliceName) {
				own = append(own, a)
			}
		}
		n.Allocation = own
		out = append(out, n)
	}
	return out
}

func fromNode(n events.Node, allocs []rpc.Allocation) Node {
	slices.SortFunc(allocs, func(a, b rpc.Allocation) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.GPRID, b.GPRID))
	})
	out := Node{
		GPUNodeName:       n.Name,
		ClusterName:       n.Cluster,
		InstanceType:      n.InstanceType,
		GPUShape:          n.InstanceType,
		GPUModelName:      n.GPUProduct,
		Memory:            n.GPUMemoryGB,
		GPUCount:          n.GPUCount,
		CloudProvider:     n.CloudProvider,
		Cloud:             n.CloudProvider,
		Region:            n.Region,
		NodeHealth:        health(n),
		Allocation:        make([]Allocation, 0, len(allocs)),
		GPUSlicingProfile: []SlicingProfile{},
	}
	used := 0
	for _, a := range allocs {
		used += a.GPUs
		name := a.GPRName
		if name == "" {
			name = a.GPRID
		}
		out.Allocation = append(out.Allocation, Allocation{
			GPRName:            name,
			SliceName:          a.Workspace,
			TotalGPUsAllocated: a.GPUs,
			AllocationTimeStamp: Timestamp{
				Seconds: strconv.FormatInt(a.At.Unix(), 10),
				Nanos:   a.At.Nanosecond(),
			},
		})
	}
	out.AvailableGPUs = max(n.GPUCount-used, 0)
	state := NodeAvailable
	switch {
	case len(allocs) > 0 || n.Workspace != "":
		state = NodeReserved
	case !n.Healthy():
		state = NodeUnavailable
	}
	if state == NodeReserved && len(allocs) == 0 {
		out.AvailableGPUs = 0 // handed over to a workspace without a ledger entry
	}
	if !n.Healthy() {
		out.AvailableGPUs = 0
	}
	out.GPUNodeStatus, out.GPUNodeState = state, state
	return out
}

func health(n events.Node) string {
	switch {
	case !n.Ready:
		return HealthUnhealthy
	case n.Unschedulable:
		return HealthUnschedulable
	default:
		return HealthHealthy
	}
}

// WorkspaceInventory is the data of GET /api/v1/inventory?sliceName= (§5.2).
type WorkspaceInventory struct {
	Items []Shape `json:"items"`
}

// Shape is one kind of GPU node a workspace can ask for.
type Shape struct {
	InstanceType      string           `json:"instanceType"`
	GPUShape          string           `json:"gpuShape"` // the GPU model here
	MemoryPerGPU      int              `json:"memoryPerGpu"`
	GPUPerNode        int              `json:"gpuPerNode"`
	TotalGPUNodes     int              `json:"totalGpuNodes"`
	ClusterName       string           `json:"clusterName"`
	GPUSlicingProfile []SlicingProfile `json:"gpuSlicingProfile"`
}

// BuildWorkspaceInventory groups the managed GPU nodes of the workspace's
// clusters by (cluster, instance type, GPU model, memory, GPUs per node),
// counting nodes whatever their health, so callers get at least one item
// whenever the clusters have GPU nodes. Items follow the workspace's cluster
// order, then the other keys, so items[0] is on its first cluster.
func BuildWorkspaceInventory(clusters []string, nodes []events.Node) WorkspaceInventory {
	in := map[string]int{}
	for i, c := range slices.Backward(clusters) {
		in[c] = i + 1 // the first occurrence wins
	}
	type key struct {
		cluster, instanceType, model string
		memory, gpus                 int
	}
	count := map[key]int{}
	for _, n := range nodes {
		if !n.Managed || n.GPUCount <= 0 || in[n.Cluster] == 0 {
			continue
		}
		count[key{n.Cluster, n.InstanceType, n.GPUProduct, n.GPUMemoryGB, n.GPUCount}]++
	}
	out := WorkspaceInventory{Items: make([]Shape, 0, len(count))}
	for k, c := range count {
		out.Items = append(out.Items, Shape{
			InstanceType: k.instanceType, GPUShape: k.model, MemoryPerGPU: k.memory, GPUPerNode: k.gpus,
			TotalGPUNodes: c, ClusterName: k.cluster, GPUSlicingProfile: []SlicingProfile{},
		})
	}
	slices.SortFunc(out.Items, func(a, b Shape) int {
		return cmp.Or(cmp.Compare(in[a.ClusterName], in[b.ClusterName]), cmp.Compare(a.InstanceType, b.InstanceType),
			cmp.Compare(a.GPUShape, b.GPUShape), cmp.Compare(a.MemoryPerGPU, b.MemoryPerGPU), cmp.Compare(a.GPUPerNode, b.GPUPerNode))
	})
	return out
}
