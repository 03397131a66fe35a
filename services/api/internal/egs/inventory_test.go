package egs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

func gpuNode(cluster, name string, edit func(*events.Node)) events.Node {
	n := events.Node{Cluster: cluster, Name: name, InstanceType: "n1-highcpu-2", GPUProduct: "Tesla-T4", GPUMemoryGB: 15,
		GPUCount: 1, Managed: true, Ready: true, CloudProvider: "gcp", Region: "us-east1"}
	if edit != nil {
		edit(&n)
	}
	return n
}

func TestBuildInventory(t *testing.T) {
	at := time.Unix(1735025703, 500)
	nodes := []events.Node{
		gpuNode("worker-1", "free", func(n *events.Node) { n.GPUCount = 4 }),
		gpuNode("worker-1", "Held.Node", func(n *events.Node) { n.GPUCount = 4 }),
		gpuNode("worker-1", "sick", func(n *events.Node) { n.Ready = false }),
		gpuNode("worker-1", "cordoned", func(n *events.Node) { n.Unschedulable = true }),
		gpuNode("worker-2", "handed", func(n *events.Node) { n.Workspace = "ws" }),
		gpuNode("worker-2", "mine", func(n *events.Node) { n.Managed = false }),
	}
	allocs := []rpc.Allocation{
		{Cluster: "worker-1", Node: "Held.Node", GPRID: "gpr-2", GPRName: "", Workspace: "ws", GPUs: 1, At: at.Add(time.Second)},
		{Cluster: "worker-1", Node: "Held.Node", GPRID: "gpr-1", GPRName: "g1", Workspace: "ws", GPUs: 2, At: at},
	}
	base := func(name, cluster string, edit func(*Node)) Node {
		n := Node{GPUNodeName: name, ClusterName: cluster, InstanceType: "n1-highcpu-2", GPUShape: "n1-highcpu-2",
			GPUModelName: "Tesla-T4", Memory: 15, GPUCount: 1, AvailableGPUs: 1, CloudProvider: "gcp", Cloud: "gcp",
			Region: "us-east1", NodeHealth: "Healthy", GPUNodeStatus: "NODE_AVAILABLE", GPUNodeState: "NODE_AVAILABLE",
			Allocation: []Allocation{}, GPUSlicingProfile: []SlicingProfile{}}
		if edit != nil {
			edit(&n)
		}
		return n
	}
	want := Inventory{
		ManagedNodes: []Node{
			base("free", "worker-1", func(n *Node) { n.GPUCount, n.AvailableGPUs = 4, 4 }),
			base("Held.Node", "worker-1", func(n *Node) {
				n.GPUCount, n.AvailableGPUs = 4, 1
				n.GPUNodeStatus, n.GPUNodeState = "NODE_RESERVED", "NODE_RESERVED"
				n.Allocation = []Allocation{
					{GPRName: "g1", SliceName: "ws", TotalGPUsAllocated: 2, AllocationTimeStamp: Timestamp{Seconds: "1735025703", Nanos: 500}},
					{GPRName: "gpr-2", SliceName: "ws", TotalGPUsAllocated: 1, AllocationTimeStamp: Timestamp{Seconds: "1735025704", Nanos: 500}},
				}
			}),
			base("sick", "worker-1", func(n *Node) {
				n.AvailableGPUs, n.NodeHealth = 0, "Unhealthy"
				n.GPUNodeStatus, n.GPUNodeState = "NODE_UNAVAILABLE", "NODE_UNAVAILABLE"
			}),
			base("cordoned", "worker-1", func(n *Node) {
				n.AvailableGPUs, n.NodeHealth = 0, "Unschedulable"
				n.GPUNodeStatus, n.GPUNodeState = "NODE_UNAVAILABLE", "NODE_UNAVAILABLE"
			}),
			base("handed", "worker-2", func(n *Node) {
				n.AvailableGPUs = 0
				n.GPUNodeStatus, n.GPUNodeState = "NODE_RESERVED", "NODE_RESERVED"
			}),
		},
		UnmanagedNodes: []Node{base("mine", "worker-2", nil)},
	}
	if diff := cmp.Diff(want, BuildInventory(nodes, allocs)); diff != "" {
		t.Errorf("BuildInventory (-want +got):\n%s", diff)
	}
}

func TestInventoryArraysNeverNull(t *testing.T) {
	tests := map[string]struct {
		v    any
		want string
	}{
		"inventory":           {BuildInventory(nil, nil), `{"managedNodes":[],"unmanagedNodes":[]}`},
		"workspace inventory": {BuildWorkspaceInventory(nil, nil), `{"items":[]}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNodeWireKeys(t *testing.T) {
	inv := BuildInventory([]events.Node{gpuNode("c1", "n", nil)},
		[]rpc.Allocation{{Cluster: "c1", Node: "n", GPRID: "gpr-1", Workspace: "ws", GPUs: 1, At: time.Unix(10, 0)}})
	b, err := json.Marshal(inv.ManagedNodes[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"gpuNodeName": "string", "clusterName": "string", "instanceType": "string", "gpuShape": "string",
		"gpuModelName": "string", "memory": "number", "gpuCount": "number", "availableGPUs": "number",
		"gpuTempThreshold": "string", "gpuPowerThreshold": "string", "cloudProvider": "string", "cloud": "string",
		"region": "string", "nodeHealth": "string", "gpuNodeStatus": "string", "gpuNodeState": "string",
		"allocation": "array", "gpuSlicingProfile": "array",
	}
	if diff := cmp.Diff(want, jsonTypes(m)); diff != "" {
		t.Errorf("node keys (-want +got):\n%s", diff)
	}
	alloc := m["allocation"].([]any)[0].(map[string]any)
	wantAlloc := map[string]string{"gprName": "string", "sliceName": "string", "totalGPUsAllocated": "number", "allocationTimeStamp": "object"}
	if diff := cmp.Diff(wantAlloc, jsonTypes(alloc)); diff != "" {
		t.Errorf("allocation keys (-want +got):\n%s", diff)
	}
	ts := alloc["allocationTimeStamp"].(map[string]any)
	if diff := cmp.Diff(map[string]any{"seconds": "10", "nanos": float64(0)}, ts); diff != "" {
		t.Errorf("timestamp (-want +got):\n%s", diff)
	}
}

func TestBuildWorkspaceInventory(t *testing.T) {
	nodes := []events.Node{
		gpuNode("a-cluster", "x1", nil),                                            // not in the workspace
		gpuNode("worker-2", "w2a", func(n *events.Node) { n.GPUProduct = "H100" }), // second cluster
		gpuNode("worker-1", "w1a", nil),                                            //
		gpuNode("worker-1", "w1b", func(n *events.Node) { n.Ready = false }),       // counted whatever its health
		gpuNode("worker-1", "w1c", func(n *events.Node) { n.GPUCount = 8 }),        // other shape
		gpuNode("worker-1", "w1d", func(n *events.Node) { n.Managed = false }),     // unmanaged: not offered
		gpuNode("worker-1", "w1e", func(n *events.Node) { n.GPUCount = 0 }),        // no GPU
	}
	got := BuildWorkspaceInventory([]string{"worker-2", "worker-1"}, nodes)
	shape := func(cluster, model string, gpus, total int) Shape {
		return Shape{InstanceType: "n1-highcpu-2", GPUShape: model, MemoryPerGPU: 15, GPUPerNode: gpus,
			TotalGPUNodes: total, ClusterName: cluster, GPUSlicingProfile: []SlicingProfile{}}
	}
	want := WorkspaceInventory{Items: []Shape{
		shape("worker-2", "H100", 1, 1),
		shape("worker-1", "Tesla-T4", 1, 2),
		shape("worker-1", "Tesla-T4", 8, 1),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildWorkspaceInventory (-want +got):\n%s", diff)
	}
}

func TestOnlyWorkspace(t *testing.T) {
	at := time.Unix(1735025703, 0)
	nodes := []events.Node{
		gpuNode("worker-1", "shared", func(n *events.Node) { n.GPUCount = 4 }),
		gpuNode("worker-1", "theirs", func(n *events.Node) { n.GPUCount = 2 }),
		gpuNode("worker-2", "free", func(n *events.Node) { n.Managed = false }),
	}
	allocs := []rpc.Allocation{
		{Cluster: "worker-1", Node: "shared", GPRID: "gpr-1", GPRName: "mine", Workspace: "ws", GPUs: 1, At: at},
		{Cluster: "worker-1", Node: "shared", GPRID: "gpr-2", GPRName: "secret", Workspace: "other", GPUs: 2, At: at.Add(time.Second)},
		{Cluster: "worker-1", Node: "theirs", GPRID: "gpr-3", GPRName: "hidden", Workspace: "other", GPUs: 2, At: at},
	}
	full := BuildInventory(nodes, allocs)
	got := full.OnlyWorkspace("ws")

	// Counts and states are those of the whole inventory; only the
	// allocation lists are cut down to the caller's workspace.
	want := BuildInventory(nodes, allocs)
	want.ManagedNodes[0].Allocation = want.ManagedNodes[0].Allocation[:1]
	want.ManagedNodes[1].Allocation = []Allocation{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OnlyWorkspace (-want +got):\n%s", diff)
	}
	if got.ManagedNodes[0].AvailableGPUs != 1 || got.ManagedNodes[1].AvailableGPUs != 0 ||
		got.ManagedNodes[1].GPUNodeStatus != NodeReserved {
		t.Errorf("counts changed: %+v", got.ManagedNodes)
	}
	if len(full.ManagedNodes[0].Allocation) != 2 {
		t.Errorf("OnlyWorkspace changed its receiver: %+v", full.ManagedNodes[0].Allocation)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"secret", "hidden", `"other"`} {
		if strings.Contains(string(b), leak) {
			t.Errorf("scoped inventory leaks %s: %s", leak, b)
		}
	}
}
