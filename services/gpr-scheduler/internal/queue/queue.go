// Package queue decides which queued GPRs get which nodes. It is pure: it
// works on a snapshot (the queue, the inventory, what is held) and returns a
// plan; the scheduler loop applies the plan. Order: priority descending, then
// age, then id. A workspace holds at most one GPR at a time, and its later
// GPRs wait behind its first; across workspaces a GPR that fits is admitted
// even when a higher one ahead of it does not (best-effort backfill).
package queue

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Node is a GPU node as the queue sees it.
type Node struct {
	Cluster      string
	Name         string
	InstanceType string
	GPUProduct   string
	GPUMemoryGB  int
	GPUCount     int
	Schedulable  bool // healthy, managed, not cordoned
}

// Key identifies a node across clusters.
func (n Node) Key() string { return n.Cluster + "/" + n.Name }

// Request is a queued GPR.
type Request struct {
	ID           string
	Workspace    string
	Priority     int
	CreatedAt    time.Time
	GPUsPerNode  int
	Nodes        int
	InstanceType string
	GPUShape     string
	MemoryPerGPU int
	AutoGPU      bool
	Clusters     []string // candidates in order of preference
	ExitDuration time.Duration
}

// Holding is a GPR that holds nodes now.
type Holding struct {
	GPRID     string
	Workspace string
	Cluster   string
	Nodes     []string
	FreeAt    time.Time // when its nodes are expected back
}

// Snapshot is the input of Schedule and Estimate.
type Snapshot struct {
	Now      time.Time
	Queue    []Request
	Nodes    []Node
	Holdings []Holding
}

// Admission gives nodes of one cluster to one GPR.
type Admission struct {
	GPRID   string
	Cluster string
	Nodes   []string
}

// Plan is the outcome of one scheduling pass.
type Plan struct {
	Admit   []Admission
	Waiting map[string]string // gprId → why it waits, in words
}

// Less orders the queue: priority desc, then older first, then id.
func Less(a, b Request) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// ShapeMatches reports whether node n has the shape r asks for, ignoring
// whether it is free: enough GPUs and memory per GPU, and unless GPU
// auto-selection is on, the instance type and GPU model asked for (gpuShape
// may name either, as EGS clients use both).
func ShapeMatches(n Node, r Request) bool {
	if n.GPUCount < r.GPUsPerNode || n.GPUMemoryGB < r.MemoryPerGPU {
		return false
	}
	if r.AutoGPU {
		return true
	}
	if r.InstanceType != "" && !strings.EqualFold(n.InstanceType, r.InstanceType) {
		return false
	}
	if r.GPUShape != "" && !strings.EqualFold(n.GPUProduct, r.GPUShape) && !strings.EqualFold(n.InstanceType, r.GPUShape) {
		return false
	}
	return true
}

// Schedule runs one pass over the snapshot.
func Schedule(s Snapshot) Plan {
	plan := Plan{Waiting: make(map[string]string, len(s.Queue))}
	type ref struct{ cluster, name string }
	taken := map[ref]bool{}
	busy := map[string]string{} // workspace → the GPR that holds or heads it
	held := map[string]bool{}   // workspaces that hold a GPR (not just a waiting head)
	for _, h := range s.Holdings {
		for _, n := range h.Nodes {
			taken[ref{h.Cluster, n}] = true
		}
		busy[h.Workspace] = h.GPRID
		held[h.Workspace] = true
	}
	// Only free nodes are scanned for placement; all nodes only to explain
	// a request that nothing matches (memoised per shape).
	free := map[string][]Node{}
	all := map[string][]Node{}
	for _, n := range s.Nodes {
		all[n.Cluster] = append(all[n.Cluster], n)
		if n.Schedulable && !taken[ref{n.Cluster, n.Name}] {
			free[n.Cluster] = append(free[n.Cluster], n)
		}
	}
	for c := range free {
		slices.SortFunc(free[c], fitOrder)
	}
	memo := map[shapeKey]string{}
	q := slices.Clone(s.Queue)
	slices.SortFunc(q, Less)
	for _, r := range q {
		if other, ok := busy[r.Workspace]; ok {
			if held[r.Workspace] {
				plan.Waiting[r.ID] = "workspace " + r.Workspace + " already holds " + other + " (one provisioned GPR per workspace)"
			} else {
				plan.Waiting[r.ID] = "waiting behind " + other + " of the same workspace"
			}
			continue
		}
		busy[r.Workspace] = r.ID
		cluster, idx, bestCluster, bestFree := pick(r, free)
		if idx == nil {
			plan.Waiting[r.ID] = explain(r, all, memo, bestCluster, bestFree)
			continue
		}
		names := make([]string, len(idx))
		for i, j := range idx {
			names[i] = free[cluster][j].Name
		}
		free[cluster] = removeAt(free[cluster], idx)
		held[r.Workspace] = true
		plan.Admit = append(plan.Admit, Admission{GPRID: r.ID, Cluster: cluster, Nodes: names})
	}
	return plan
}

// removeAt drops the elements at the ascending indexes idx, keeping order.
func removeAt(ns []Node, idx []int) []Node {
	out := ns[:0]
	k := 0
	for i, n := range ns {
		if k < len(idx) && idx[k] == i {
			k++
			continue
		}
		out = append(out, n)
	}
	return out
}

// fitOrder puts the smallest adequate nodes first (best fit), then by name.
func fitOrder(a, b Node) int {
	if c := cmp.Compare(a.GPUCount, b.GPUCount); c != 0 {
		return c
	}
	if c := cmp.Compare(a.GPUMemoryGB, b.GPUMemoryGB); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// pick returns the first candidate cluster with enough free matching nodes
// (their indexes in free[cluster]), or, when none has, the cluster with the
// most free matching nodes.
func pick(r Request, free map[string][]Node) (cluster string, idx []int, bestCluster string, bestFree int) {
	bestFree = -1
	for _, c := range r.Clusters {
		var found []int
		for i, n := range free[c] {
			if ShapeMatches(n, r) {
				found = append(found, i)
				if len(found) == r.Nodes {
					return c, found, "", 0
				}
			}
		}
		if len(found) > bestFree {
			bestCluster, bestFree = c, len(found)
		}
	}
	return "", nil, bestCluster, max(bestFree, 0)
}

type shapeKey struct {
	clusters                         string
	gpus, mem, nodes                 int
	autoGPU                          bool
	shape, instanceType, bestCluster string
	bestFree                         int
}

// explain says why r waits, memoised per shape: a long queue of similar
// requests costs one explanation, not one each.
func explain(r Request, all map[string][]Node, memo map[shapeKey]string, bestCluster string, bestFree int) string {
	key := shapeKey{strings.Join(r.Clusters, ","), r.GPUsPerNode, r.MemoryPerGPU, r.Nodes, r.AutoGPU, r.GPUShape, r.InstanceType, bestCluster, bestFree}
	if why, ok := memo[key]; ok {
		return why
	}
	none := true
	for _, c := range r.Clusters {
		for _, n := range all[c] {
			if ShapeMatches(n, r) {
				none = false
				break
			}
		}
	}
	why := fmt.Sprintf("needs %d free node(s) with %s on one cluster; most free: %d on %s",
		r.Nodes, describe(r), bestFree, bestCluster)
	if none {
		why = fmt.Sprintf("no node on %s matches %s", strings.Join(r.Clusters, ", "), describe(r))
	}
	memo[key] = why
	return why
}

func describe(r Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "≥%d GPU(s)", r.GPUsPerNode)
	if r.MemoryPerGPU > 0 {
		fmt.Fprintf(&b, " of ≥%d GB", r.MemoryPerGPU)
	}
	if !r.AutoGPU {
		if r.GPUShape != "" {
			fmt.Fprintf(&b, " shape %s", r.GPUShape)
		}
		if r.InstanceType != "" {
			fmt.Fprintf(&b, " instance type %s", r.InstanceType)
		}
	}
	return b.String()
}

// Estimate predicts when each queued GPR starts, by playing the queue forward:
// every GPR (in queue order) takes the earliest nodes that fit, which then stay
// busy for its exitDuration. A GPR that can never fit gets no entry.
func Estimate(s Snapshot) map[string]time.Time {
	freeAt := map[string]time.Time{}
	wsFree := map[string]time.Time{}
	for _, h := range s.Holdings {
		for _, n := range h.Nodes {
			freeAt[h.Cluster+"/"+n] = h.FreeAt
		}
		if h.FreeAt.After(wsFree[h.Workspace]) {
			wsFree[h.Workspace] = h.FreeAt
		}
	}
	byCluster := map[string][]Node{}
	for _, n := range s.Nodes {
		if n.Schedulable {
			byCluster[n.Cluster] = append(byCluster[n.Cluster], n)
		}
	}
	q := slices.Clone(s.Queue)
	slices.SortFunc(q, Less)
	out := make(map[string]time.Time, len(q))
	type slot struct {
		key string
		at  time.Time
	}
	for _, r := range q {
		var best []slot
		var bestAt time.Time
		for _, c := range r.Clusters {
			var slots []slot
			for _, n := range byCluster[c] {
				if !ShapeMatches(n, r) {
					continue
				}
				at := freeAt[n.Key()]
				if at.Before(s.Now) {
					at = s.Now
				}
				slots = append(slots, slot{n.Key(), at})
			}
			if len(slots) < r.Nodes {
				continue
			}
			slices.SortFunc(slots, func(a, b slot) int { return a.at.Compare(b.at) })
			at := slots[r.Nodes-1].at
			if w := wsFree[r.Workspace]; w.After(at) {
				at = w
			}
			// Of the nodes free by then, take those that free up last, leaving
			// the earlier ones for requests that can start sooner.
			end := r.Nodes
			for end < len(slots) && !slots[end].at.After(at) {
				end++
			}
			if best == nil || at.Before(bestAt) {
				best, bestAt = slots[end-r.Nodes:end], at
			}
		}
		if best == nil {
			continue
		}
		out[r.ID] = bestAt
		end := bestAt.Add(r.ExitDuration)
		for _, sl := range best {
			freeAt[sl.key] = end
		}
		wsFree[r.Workspace] = end
	}
	return out
}
