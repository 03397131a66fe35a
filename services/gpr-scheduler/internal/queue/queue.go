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
	plan := Plan{Waiting: map[string]string{}}
	taken := map[string]bool{}
	busy := map[string]string{} // workspace → the GPR that holds or heads it
	for _, h := range s.Holdings {
		for _, n := range h.Nodes {
			taken[h.Cluster+"/"+n] = true
		}
		busy[h.Workspace] = h.GPRID
	}
	byCluster := map[string][]Node{}
	for _, n := range s.Nodes {
		byCluster[n.Cluster] = append(byCluster[n.Cluster], n)
	}
	for c := range byCluster {
		slices.SortFunc(byCluster[c], fitOrder)
	}
	q := slices.Clone(s.Queue)
	slices.SortFunc(q, Less)
	held := map[string]bool{} // workspaces that hold a GPR (not just a waiting head)
	for _, h := range s.Holdings {
		held[h.Workspace] = true
	}
	for _, r := range q {
		if other, ok := busy[r.Workspace]; ok {
			if held[r.Workspace] {
				plan.Waiting[r.ID] = fmt.Sprintf("workspace %s already holds %s (one provisioned GPR per workspace)", r.Workspace, other)
			} else {
				plan.Waiting[r.ID] = fmt.Sprintf("waiting behind %s of the same workspace", other)
			}
			continue
		}
		busy[r.Workspace] = r.ID
		cluster, nodes, why := pick(r, byCluster, taken)
		if nodes == nil {
			plan.Waiting[r.ID] = why
			continue
		}
		for _, n := range nodes {
			taken[cluster+"/"+n] = true
		}
		held[r.Workspace] = true
		plan.Admit = append(plan.Admit, Admission{GPRID: r.ID, Cluster: cluster, Nodes: nodes})
	}
	return plan
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

func pick(r Request, byCluster map[string][]Node, taken map[string]bool) (string, []string, string) {
	bestCluster, bestFree, anyMatch := "", -1, 0
	for _, c := range r.Clusters {
		var free []string
		matching := 0
		for _, n := range byCluster[c] {
			if !ShapeMatches(n, r) {
				continue
			}
			matching++
			if n.Schedulable && !taken[n.Key()] {
				free = append(free, n.Name)
				if len(free) == r.Nodes {
					return c, free, ""
				}
			}
		}
		anyMatch += matching
		if len(free) > bestFree {
			bestCluster, bestFree = c, len(free)
		}
	}
	if anyMatch == 0 {
		return "", nil, fmt.Sprintf("no node on %s matches %s", strings.Join(r.Clusters, ", "), describe(r))
	}
	return "", nil, fmt.Sprintf("needs %d free node(s) with %s on one cluster; most free: %d on %s",
		r.Nodes, describe(r), max(bestFree, 0), bestCluster)
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
