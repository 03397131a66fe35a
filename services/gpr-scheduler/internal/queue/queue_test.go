package queue

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func node(cluster, name string, gpus, mem int, product string) Node {
	return Node{Cluster: cluster, Name: name, InstanceType: "it-" + product, GPUProduct: product, GPUMemoryGB: mem, GPUCount: gpus, Schedulable: true}
}

type reqB struct{ r Request }

func req(id, ws string, prio int, age time.Duration) *reqB {
	return &reqB{Request{ID: id, Workspace: ws, Priority: prio, CreatedAt: t0.Add(-age), GPUsPerNode: 8, Nodes: 1,
		AutoGPU: true, Clusters: []string{"c1"}, ExitDuration: time.Hour}}
}
func (b *reqB) nodes(n int) *reqB          { b.r.Nodes = n; return b }
func (b *reqB) shape(s string) *reqB       { b.r.AutoGPU = false; b.r.GPUShape = s; return b }
func (b *reqB) clusters(c ...string) *reqB { b.r.Clusters = c; return b }
func (b *reqB) mem(m int) *reqB            { b.r.MemoryPerGPU = m; return b }
func (b *reqB) build() Request             { return b.r }
func (b *reqB) exit(d time.Duration) *reqB { b.r.ExitDuration = d; return b }
func (b *reqB) gpus(n int) *reqB           { b.r.GPUsPerNode = n; return b }

func TestLess(t *testing.T) {
	q := []Request{
		req("d", "w", 100, time.Minute).build(),
		req("a", "w", 300, time.Second).build(),
		req("c", "w", 100, time.Hour).build(),
		req("b", "w", 300, time.Second).build(),
	}
	slices.SortFunc(q, Less)
	var got []string
	for _, r := range q {
		got = append(got, r.ID)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, got); diff != "" {
		t.Fatalf("order (-want +got):\n%s", diff)
	}
}

func TestSchedule(t *testing.T) {
	h100 := func(c, n string) Node { return node(c, n, 8, 80, "H100") }
	a100 := func(c, n string) Node { return node(c, n, 8, 40, "A100") }
	tests := map[string]struct {
		queue    []Request
		nodes    []Node
		holdings []Holding
		admit    []Admission
		waiting  map[string]string
	}{
		"higher priority first": {
			queue: []Request{req("low", "w1", 10, time.Hour).build(), req("high", "w2", 250, 0).build()},
			nodes: []Node{h100("c1", "n1")},
			admit: []Admission{{GPRID: "high", Cluster: "c1", Nodes: []string{"n1"}}},
			waiting: map[string]string{
				"low": "needs 1 free node(s) with ≥8 GPU(s) on one cluster; most free: 0 on c1",
			},
		},
		"same priority: older first": {
			queue:   []Request{req("young", "w1", 100, time.Second).build(), req("old", "w2", 100, time.Hour).build()},
			nodes:   []Node{h100("c1", "n1")},
			admit:   []Admission{{GPRID: "old", Cluster: "c1", Nodes: []string{"n1"}}},
			waiting: map[string]string{"young": "needs 1 free node(s) with ≥8 GPU(s) on one cluster; most free: 0 on c1"},
		},
		"one GPR per workspace": {
			queue:   []Request{req("first", "w", 100, time.Hour).build(), req("second", "w", 100, time.Minute).build()},
			nodes:   []Node{h100("c1", "n1"), h100("c1", "n2")},
			admit:   []Admission{{GPRID: "first", Cluster: "c1", Nodes: []string{"n1"}}},
			waiting: map[string]string{"second": "workspace w already holds first (one provisioned GPR per workspace)"},
		},
		"workspace holding from before": {
			queue:    []Request{req("next", "w", 300, 0).build()},
			nodes:    []Node{h100("c1", "n1"), h100("c1", "n2")},
			holdings: []Holding{{GPRID: "held", Workspace: "w", Cluster: "c1", Nodes: []string{"n1"}}},
			waiting:  map[string]string{"next": "workspace w already holds held (one provisioned GPR per workspace)"},
		},
		"later GPR of a workspace waits behind its unplaced head": {
			queue:   []Request{req("big", "w", 200, time.Hour).nodes(3).build(), req("small", "w", 100, 0).build()},
			nodes:   []Node{h100("c1", "n1"), h100("c1", "n2")},
			waiting: map[string]string{"big": "numberOfGPUNodes", "small": "waiting behind big of the same workspace"},
		},
		"backfill across workspaces": {
			queue:   []Request{req("big", "w1", 200, time.Hour).nodes(3).build(), req("small", "w2", 100, 0).build()},
			nodes:   []Node{h100("c1", "n1"), h100("c1", "n2")},
			admit:   []Admission{{GPRID: "small", Cluster: "c1", Nodes: []string{"n1"}}},
			waiting: map[string]string{"big": "needs 3 free node(s) with ≥8 GPU(s) on one cluster; most free: 2 on c1"},
		},
		"shape and memory": {
			queue: []Request{req("a", "w1", 100, time.Hour).shape("A100").build(), req("h", "w2", 100, 0).mem(80).build()},
			nodes: []Node{a100("c1", "a1"), h100("c1", "h1")},
			admit: []Admission{{GPRID: "a", Cluster: "c1", Nodes: []string{"a1"}}, {GPRID: "h", Cluster: "c1", Nodes: []string{"h1"}}},
		},
		"best fit keeps big nodes": {
			queue: []Request{req("small", "w1", 100, 0).gpus(4).build()},
			nodes: []Node{node("c1", "big", 8, 80, "H100"), node("c1", "small", 4, 80, "H100")},
			admit: []Admission{{GPRID: "small", Cluster: "c1", Nodes: []string{"small"}}},
		},
		"all nodes on one cluster, preferred first": {
			queue: []Request{req("r", "w", 100, 0).nodes(2).clusters("c2", "c1").build()},
			nodes: []Node{h100("c1", "n1"), h100("c1", "n2"), h100("c2", "m1"), h100("c2", "m2")},
			admit: []Admission{{GPRID: "r", Cluster: "c2", Nodes: []string{"m1", "m2"}}},
		},
		"nodes split over clusters do not add up": {
			queue:   []Request{req("r", "w", 100, 0).nodes(2).clusters("c1", "c2").build()},
			nodes:   []Node{h100("c1", "n1"), h100("c2", "m1")},
			waiting: map[string]string{"r": "needs 2 free node(s) with ≥8 GPU(s) on one cluster; most free: 1 on c1"},
		},
		"unschedulable and taken nodes are skipped": {
			queue:    []Request{req("r", "w", 100, 0).build()},
			nodes:    []Node{{Cluster: "c1", Name: "sick", GPUCount: 8, GPUMemoryGB: 80}, h100("c1", "n1"), h100("c1", "n2")},
			holdings: []Holding{{GPRID: "x", Workspace: "other", Cluster: "c1", Nodes: []string{"n1"}}},
			admit:    []Admission{{GPRID: "r", Cluster: "c1", Nodes: []string{"n2"}}},
		},
		"no matching shape": {
			queue:   []Request{req("r", "w", 100, 0).shape("B200").build()},
			nodes:   []Node{h100("c1", "n1")},
			waiting: map[string]string{"r": "no node on c1 matches ≥8 GPU(s) shape B200"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			plan := Schedule(Snapshot{Now: t0, Queue: tc.queue, Nodes: tc.nodes, Holdings: tc.holdings})
			if diff := cmp.Diff(tc.admit, plan.Admit); diff != "" {
				t.Errorf("admissions (-want +got):\n%s", diff)
			}
			for id, want := range tc.waiting {
				got := Why(plan.Waiting[id])
				if want == "numberOfGPUNodes" {
					if got == "" {
						t.Errorf("%s: no waiting reason", id)
					}
					continue
				}
				if got != want {
					t.Errorf("%s waits because %q, want %q", id, got, want)
				}
			}
			for _, a := range plan.Admit {
				if _, ok := plan.Waiting[a.GPRID]; ok {
					t.Errorf("%s both admitted and waiting", a.GPRID)
				}
			}
		})
	}
}

func TestScheduleNeverDoubleAllocates(t *testing.T) {
	var nodes []Node
	for i := range 20 {
		nodes = append(nodes, node("c1", fmt.Sprintf("n%02d", i), 8, 80, "H100"))
	}
	var q []Request
	for i := range 50 {
		q = append(q, req(fmt.Sprintf("g%02d", i), fmt.Sprintf("w%02d", i), 1+i%300, time.Duration(i)*time.Second).nodes(1+i%3).build())
	}
	plan := Schedule(Snapshot{Now: t0, Queue: q, Nodes: nodes})
	seen := map[string]string{}
	if len(plan.Evict) != 0 {
		t.Fatalf("evictions with nothing held: %v", plan.Evict)
	}
	total := 0
	for _, a := range plan.Admit {
		for _, n := range a.Nodes {
			if other, ok := seen[n]; ok {
				t.Fatalf("node %s given to %s and %s", n, other, a.GPRID)
			}
			seen[n] = a.GPRID
			total++
		}
	}
	if total == 0 || total > len(nodes) {
		t.Fatalf("%d nodes allocated of %d", total, len(nodes))
	}
}

func TestEstimate(t *testing.T) {
	nodes := []Node{node("c1", "n1", 8, 80, "H100"), node("c1", "n2", 8, 80, "H100")}
	holdings := []Holding{{GPRID: "h", Workspace: "wh", Cluster: "c1", Nodes: []string{"n1"}, FreeAt: t0.Add(time.Hour)}}
	q := []Request{
		req("first", "w1", 200, time.Hour).exit(30 * time.Minute).build(), // n2 is free: starts now
		req("second", "w2", 100, time.Minute).exit(time.Hour).build(),     // n1 frees at +1h; n2 at +30m → +30m
		req("pair", "w3", 50, 0).nodes(2).build(),                         // needs both: n1 +1h, n2 +1h30m (after second)
		req("mine", "wh", 300, time.Hour).clusters("c1").build(),          // its workspace holds h until +1h
		req("never", "w4", 300, 0).shape("B200").build(),                  // no such node
	}
	got := Estimate(Snapshot{Now: t0, Queue: q, Nodes: nodes, Holdings: holdings})
	want := map[string]time.Time{
		"mine":   t0.Add(time.Hour),
		"first":  t0,
		"second": t0.Add(30 * time.Minute),
		"pair":   t0.Add(2 * time.Hour),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("estimates (-want +got):\n%s", diff)
	}
}

func TestEviction(t *testing.T) {
	h100 := func(c, n string) Node { return node(c, n, 8, 80, "H100") }
	nodes := []Node{h100("c1", "n1"), h100("c1", "n2"), h100("c1", "n3")}
	hold := func(id string, prio int, startedAgo time.Duration, evictable bool, ns ...string) Holding {
		return Holding{GPRID: id, Workspace: "ws-" + id, Cluster: "c1", Nodes: ns, Priority: prio,
			StartedAt: t0.Add(-startedAgo), Evictable: evictable, FreeAt: t0.Add(time.Hour)}
	}
	tests := map[string]struct {
		queue    []Request
		holdings []Holding
		evict    []Eviction
		code     string
	}{
		"lowest priority first": {
			queue:    []Request{req("hi", "w", 250, 0).build()},
			holdings: []Holding{hold("p50", 50, time.Hour, true, "n1"), hold("p20", 20, time.Hour, true, "n2"), hold("p90", 90, time.Hour, true, "n3")},
			evict:    []Eviction{{Victim: "p20", By: "hi"}},
			code:     AwaitingEviction,
		},
		"same priority: most recently started first": {
			queue:    []Request{req("hi", "w", 250, 0).build()},
			holdings: []Holding{hold("old", 50, 2*time.Hour, true, "n1"), hold("new", 50, time.Minute, true, "n2"), hold("mid", 50, time.Hour, true, "n3")},
			evict:    []Eviction{{Victim: "new", By: "hi"}},
			code:     AwaitingEviction,
		},
		"enough victims for two nodes": {
			queue:    []Request{req("hi", "w", 250, 0).nodes(2).build()},
			holdings: []Holding{hold("a", 10, time.Hour, true, "n1"), hold("b", 20, time.Hour, true, "n2"), hold("c", 30, time.Hour, true, "n3")},
			evict:    []Eviction{{Victim: "a", By: "hi"}, {Victim: "b", By: "hi"}},
			code:     AwaitingEviction,
		},
		"never a higher or equal priority, never one that forbids it": {
			queue:    []Request{req("mid", "w", 100, 0).build()},
			holdings: []Holding{hold("higher", 200, time.Hour, true, "n1"), hold("equal", 100, time.Hour, true, "n2"), hold("locked", 10, time.Hour, false, "n3")},
			code:     InsufficientNodes,
		},
		"nodes on their way back are waited for, not evicted again": {
			queue: []Request{req("hi", "w", 250, 0).build()},
			holdings: []Holding{func() Holding { h := hold("going", 10, time.Hour, false, "n1"); h.Releasing = true; return h }(),
				hold("p20", 20, time.Hour, true, "n2"), hold("p30", 30, time.Hour, true, "n3")},
			code: AwaitingEviction,
		},
		"one victim serves one request only": {
			queue:    []Request{req("a", "wa", 250, time.Hour).build(), req("b", "wb", 250, 0).build()},
			holdings: []Holding{hold("v1", 10, time.Hour, true, "n1"), hold("x", 300, time.Hour, true, "n2"), hold("y", 300, time.Hour, true, "n3")},
			evict:    []Eviction{{Victim: "v1", By: "a"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			plan := Schedule(Snapshot{Now: t0, Queue: tc.queue, Nodes: nodes, Holdings: tc.holdings})
			if diff := cmp.Diff(tc.evict, plan.Evict); diff != "" {
				t.Errorf("evictions (-want +got):\n%s", diff)
			}
			if len(plan.Admit) != 0 {
				t.Errorf("admitted %v with no free node", plan.Admit)
			}
			if tc.code != "" {
				got := plan.Waiting[tc.queue[0].ID]
				if len(got) == 0 || got[0].Code != tc.code {
					t.Errorf("reason %+v, want code %s", got, tc.code)
				}
			}
		})
	}
}

func TestReasonsAndPositions(t *testing.T) {
	nodes := []Node{node("c1", "n1", 8, 80, "H100"), {Cluster: "c1", Name: "sick", GPUCount: 8, GPUMemoryGB: 40, GPUProduct: "A100", InstanceType: "it-A100"}}
	holdings := []Holding{{GPRID: "holder", Workspace: "other", Cluster: "c1", Nodes: []string{"n1"}, Priority: 300}}
	q := []Request{
		req("top", "w1", 300, 0).build(),
		req("mid", "w2", 200, 0).build(),
		req("sick", "w3", 100, 0).shape("A100").build(),
		req("none", "w4", 100, time.Second).shape("B200").build(),
	}
	plan := Schedule(Snapshot{Now: t0, Queue: q, Nodes: nodes, Holdings: holdings})
	want := map[string][]string{
		"top":  {InsufficientNodes},
		"mid":  {InsufficientNodes, HigherPriorityAhead},
		"none": {NoMatchingNodes, HigherPriorityAhead},
		"sick": {NodesUnavailable, HigherPriorityAhead},
	}
	for id, codes := range want {
		var got []string
		for _, r := range plan.Waiting[id] {
			got = append(got, r.Code)
			if r.Message == "" {
				t.Errorf("%s: reason %s without a message", id, r.Code)
			}
		}
		if diff := cmp.Diff(codes, got); diff != "" {
			t.Errorf("%s reasons (-want +got):\n%s", id, diff)
		}
	}
	if !strings.Contains(Why(plan.Waiting["top"]), "held by holder") {
		t.Errorf("top does not say who holds the nodes: %q", Why(plan.Waiting["top"]))
	}
	if diff := cmp.Diff(map[string]int{"top": 1, "mid": 2, "none": 3, "sick": 4}, plan.Position); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
}

func TestAllowedShapes(t *testing.T) {
	nodes := []Node{node("c1", "a", 8, 40, "A100"), node("c1", "h", 8, 80, "H100")}
	r := req("r", "w", 100, 0).build()
	r.AllowedShapes = []string{"h100"}
	plan := Schedule(Snapshot{Now: t0, Queue: []Request{r}, Nodes: nodes})
	if diff := cmp.Diff([]Admission{{GPRID: "r", Cluster: "c1", Nodes: []string{"h"}}}, plan.Admit); diff != "" {
		t.Fatalf("best fit ignored the allow-list (-want +got):\n%s", diff)
	}
}
