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
	"iter"
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
	ID            string
	Workspace     string
	Priority      int
	CreatedAt     time.Time // orders GPRs of equal priority: the creation time, unless an admin moved it
	GPUsPerNode   int
	Nodes         int
	InstanceType  string
	GPUShape      string
	MemoryPerGPU  int
	AutoGPU       bool
	Clusters      []string // candidates in order of preference
	ExitDuration  time.Duration
	AllowedShapes []string // when set, only nodes of these GPU models or instance types
}

// Holding is a GPR that holds nodes now.
type Holding struct {
	GPRID     string
	Workspace string
	Cluster   string
	Nodes     []string
	FreeAt    time.Time // when its nodes are expected back
	Priority  int
	StartedAt time.Time
	Evictable bool // provisioned, and its owner allows eviction
	Releasing bool // its nodes are on their way back
}

// Snapshot is the input of Schedule and Estimate.
type Snapshot struct {
	Now      time.Time
	Queue    []Request
	Nodes    []Node
	Holdings []Holding
	Sorted   bool // Queue is already in Less order (the caller keeps it so)

	// A caller that keeps its state indexed (the scheduler does) passes it
	// too, so that a pass costs what changed rather than the size of the
	// queue or the inventory:
	//   - Order, when set, is the queue (Queue is then ignored);
	//   - with Indexed, Free lists every schedulable node that no holding
	//     covers and Holders maps each workspace that holds nodes to the GPR
	//     holding them; Nodes is then read only to explain or to evict.
	// Both must agree with Nodes and Holdings; the property test checks that
	// the indexed and the plain snapshot decide alike.
	Order   *Order
	Indexed bool
	Free    []Node
	Holders map[string]string
	// Heads, with Indexed, holds for each workspace that holds nothing its
	// first queued GPR. Decide walks it instead of the whole queue: a GPR
	// behind its workspace's first can neither start nor evict, so a queue
	// where most GPRs wait behind their workspace's costs what its heads do.
	Heads *Order
}

// ordered yields the queue in Less order.
func (s Snapshot) ordered() iter.Seq[Request] {
	if s.Order != nil {
		return s.Order.All()
	}
	q := s.Queue
	if !s.Sorted && !slices.IsSortedFunc(q, Less) {
		q = slices.Clone(q)
		slices.SortFunc(q, Less)
	}
	return slices.Values(q)
}

// Admission gives nodes of one cluster to one GPR.
type Admission struct {
	GPRID   string
	Cluster string
	Nodes   []string
}

// Eviction takes the nodes of Victim back so that By can start.
type Eviction struct {
	Victim string
	By     string
}

// Reason is one machine-readable cause of a wait, with its human text.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Reason codes.
const (
	NoMatchingNodes     = "NO_MATCHING_NODES"       // no node of the shape on the GPR's clusters
	NodesUnavailable    = "NODES_UNAVAILABLE"       // matching nodes exist but none is schedulable
	InsufficientNodes   = "INSUFFICIENT_FREE_NODES" // not enough free matching nodes on any one cluster
	WorkspaceHoldsGPR   = "WORKSPACE_HOLDS_GPR"     // the workspace already holds a GPR
	BehindWorkspaceGPR  = "BEHIND_WORKSPACE_GPR"    // an earlier GPR of the workspace waits first
	HigherPriorityAhead = "HIGHER_PRIORITY_AHEAD"   // GPRs of higher priority wait ahead of it
	AwaitingEviction    = "AWAITING_EVICTION"       // lower-priority GPRs are giving their nodes back for it
)

// Plan is the outcome of one scheduling pass.
type Plan struct {
	Admit    []Admission
	Evict    []Eviction
	Waiting  map[string][]Reason // gprId → why it waits (Schedule only)
	Position map[string]int      // gprId → 1-based place in the queue order (Schedule only)
	// Examined is how many GPRs of the queue order Decide looked at: after
	// them no node was free, on its way back or evictable by a later one.
	Examined int
}

// Why joins the messages of reasons, for logs and events.
func Why(rs []Reason) string {
	msgs := make([]string, len(rs))
	for i, r := range rs {
		msgs[i] = r.Message
	}
	return strings.Join(msgs, "; ")
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
	if len(r.AllowedShapes) > 0 && !slices.ContainsFunc(r.AllowedShapes, func(a string) bool {
		return strings.EqualFold(a, n.GPUProduct) || strings.EqualFold(a, n.InstanceType)
	}) {
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
//
// A GPR that does not fit may evict provisioned GPRs of lower priority that
// allow eviction: lowest priority first, then the most recently started, on
// the cluster where the fewest victims make it fit. Nodes already on their
// way back count as free for this, so one shortage never evicts twice.
func Schedule(s Snapshot) Plan { return schedule(s, true, 0) }

// Decide is Schedule without the explanations: the same admissions and
// evictions, but it stops at the first GPR from which on nothing can change
// (no free node, none on its way back, none evictable by a lower priority),
// so a deep queue costs what its head costs. The scheduling loop runs it on
// every change; Schedule runs when someone asks why a GPR waits.
func Decide(s Snapshot) Plan { return schedule(s, false, 0) }

// ScheduleHead is Schedule for the first n GPRs of the queue only: their
// reasons and positions are exactly Schedule's (nothing behind a GPR changes
// why it waits), at the cost of n rather than of the whole queue. Its
// admissions and evictions are those the head would get; the scheduling loop
// does not apply them.
func ScheduleHead(s Snapshot, n int) Plan { return schedule(s, true, n) }

func schedule(s Snapshot, explainAll bool, limit int) Plan {
	var plan Plan
	if explainAll {
		n := len(s.Queue)
		if s.Order != nil {
			n = s.Order.Len()
		}
		if limit > 0 {
			n = min(n, limit)
		}
		plan.Waiting, plan.Position = make(map[string][]Reason, n), make(map[string]int, n)
	}
	// busy: workspace → the GPR that holds or heads it; held: workspaces
	// that hold a GPR (not just a waiting head). With an indexed snapshot
	// both start from the caller's Holders and record only this pass's own
	// additions.
	busy, held := map[string]string{}, map[string]bool{}
	holderOf := func(ws string) (string, bool) {
		if id, ok := busy[ws]; ok {
			return id, true
		}
		id, ok := s.Holders[ws]
		return id, ok
	}
	isHeld := func(ws string) bool {
		if held[ws] {
			return true
		}
		_, ok := s.Holders[ws]
		return ok
	}
	// Only free nodes are scanned for placement; all nodes only to explain
	// or to evict (grouped per cluster on first use).
	free := map[string][]Node{}
	if s.Indexed {
		for _, n := range s.Free {
			free[n.Cluster] = append(free[n.Cluster], n)
		}
	} else {
		type ref struct{ cluster, name string }
		covered := make(map[ref]bool, len(s.Nodes))
		for i := range s.Holdings {
			h := &s.Holdings[i]
			for _, n := range h.Nodes {
				covered[ref{h.Cluster, n}] = true
			}
			busy[h.Workspace] = h.GPRID
			held[h.Workspace] = true
		}
		for _, n := range s.Nodes {
			if n.Schedulable && !covered[ref{n.Cluster, n.Name}] {
				free[n.Cluster] = append(free[n.Cluster], n)
			}
		}
	}
	var allByCluster map[string][]Node
	all := func() map[string][]Node {
		if allByCluster == nil {
			allByCluster = map[string][]Node{}
			for _, n := range s.Nodes {
				allByCluster[n.Cluster] = append(allByCluster[n.Cluster], n)
			}
		}
		return allByCluster
	}
	freeTotal := 0
	for c := range free {
		slices.SortFunc(free[c], fitOrder)
		freeTotal += len(free[c])
	}
	memo := map[shapeKey][]Reason{}
	claimed := map[string]bool{} // holdings already being evicted, or spoken for by an earlier request
	// cannotChange reports that from request priority p on, no later request
	// can be admitted or evict anything in this pass: no node is free, none
	// is on its way back and no holding of lower priority is evictable. The
	// holdings are scanned once per change of the claims, not per request.
	claimsSeen := -1
	releasing, minEvictable := false, 0
	cannotChange := func(p int) bool {
		if freeTotal > 0 {
			return false
		}
		if len(claimed) != claimsSeen {
			claimsSeen = len(claimed)
			releasing, minEvictable = false, int(^uint(0)>>1)
			for i := range s.Holdings {
				h := &s.Holdings[i]
				if len(claimed) > 0 && claimed[h.GPRID] {
					continue
				}
				if h.Releasing {
					releasing = true
				}
				if h.Evictable && h.Priority < minEvictable {
					minEvictable = h.Priority
				}
			}
		}
		return !releasing && minEvictable >= p
	}
	higherWaiting := 0
	lastPrio, waitingAtPrio := -1, 0
	checkedAt := -1 // the priority cannotChange last answered false for, with no claims since
	seq := s.ordered()
	if !explainAll && s.Indexed && s.Heads != nil {
		seq = s.Heads.All()
	}
	i := -1
	for r := range seq {
		i++
		if limit > 0 && i >= limit {
			break
		}
		plan.Examined = i + 1
		if !explainAll && r.Priority != checkedAt {
			if cannotChange(r.Priority) {
				plan.Examined = i
				break
			}
			checkedAt = r.Priority
		}
		if explainAll {
			plan.Position[r.ID] = i + 1
		}
		if r.Priority != lastPrio {
			higherWaiting += waitingAtPrio
			lastPrio, waitingAtPrio = r.Priority, 0
		}
		if other, ok := holderOf(r.Workspace); ok {
			switch {
			case !explainAll:
			case isHeld(r.Workspace):
				plan.Waiting[r.ID] = []Reason{{WorkspaceHoldsGPR, "workspace " + r.Workspace + " already holds " + other + " (one provisioned GPR per workspace)"}}
			default:
				plan.Waiting[r.ID] = []Reason{{BehindWorkspaceGPR, "waiting behind " + other + " of the same workspace"}}
			}
			waitingAtPrio++
			continue
		}
		busy[r.Workspace] = r.ID
		cluster, idx, bestCluster, bestFree := pick(r, free)
		if idx != nil {
			names := make([]string, len(idx))
			for i, j := range idx {
				names[i] = free[cluster][j].Name
			}
			free[cluster] = removeAt(free[cluster], idx)
			freeTotal -= len(idx)
			checkedAt = -1
			held[r.Workspace] = true
			plan.Admit = append(plan.Admit, Admission{GPRID: r.ID, Cluster: cluster, Nodes: names})
			continue
		}
		waitingAtPrio++
		var why Reason
		evicting := false
		if !cannotChange(r.Priority) {
			claims := len(claimed)
			why, evicting = evict(r, free, all(), s.Holdings, claimed, &plan)
			if len(claimed) != claims {
				checkedAt = -1
			}
		}
		if !explainAll {
			continue
		}
		if evicting {
			plan.Waiting[r.ID] = []Reason{why}
		} else {
			plan.Waiting[r.ID] = slices.Clone(explain(r, all(), s.Holdings, memo, bestCluster, bestFree))
		}
		if higherWaiting > 0 {
			plan.Waiting[r.ID] = append(plan.Waiting[r.ID], Reason{HigherPriorityAhead,
				fmt.Sprintf("%d GPR(s) of higher priority wait ahead of it", higherWaiting)})
		}
	}
	return plan
}

// evict plans the evictions that let r start, if lower-priority evictable
// GPRs hold enough matching nodes. It reports the reason r waits meanwhile.
func evict(r Request, free, all map[string][]Node, holdings []Holding, claimed map[string]bool, plan *Plan) (Reason, bool) {
	type option struct {
		cluster string
		victims []*Holding
		coming  int
	}
	var best *option
	for _, c := range r.Clusters {
		matches := map[string]bool{}
		for _, n := range all[c] {
			if n.Schedulable && ShapeMatches(n, r) {
				matches[n.Name] = true
			}
		}
		have := 0
		for _, n := range free[c] {
			if matches[n.Name] {
				have++
			}
		}
		var cands []*Holding
		coming := 0
		for i := range holdings {
			h := &holdings[i]
			if h.Cluster != c || claimed[h.GPRID] {
				continue
			}
			k := 0
			for _, n := range h.Nodes {
				if matches[n] {
					k++
				}
			}
			if k == 0 {
				continue
			}
			if h.Releasing {
				coming += k
			} else if h.Evictable && h.Priority < r.Priority {
				cands = append(cands, h)
			}
		}
		have += coming
		if have >= r.Nodes {
			if best == nil || len(best.victims) > 0 {
				best = &option{cluster: c, coming: coming}
			}
			continue
		}
		slices.SortFunc(cands, func(a, b *Holding) int {
			if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
				return c
			}
			return b.StartedAt.Compare(a.StartedAt)
		})
		var victims []*Holding
		for _, h := range cands {
			if have >= r.Nodes {
				break
			}
			victims = append(victims, h)
			for _, n := range h.Nodes {
				if matches[n] {
					have++
				}
			}
		}
		if have >= r.Nodes && (best == nil || len(victims) < len(best.victims)) {
			best = &option{cluster: c, victims: victims, coming: coming}
		}
	}
	if best == nil {
		return Reason{}, false
	}
	if best.coming == 0 && len(best.victims) == 0 {
		return Reason{}, false
	}
	var ids []string
	for _, h := range best.victims {
		claimed[h.GPRID] = true
		ids = append(ids, h.GPRID)
		plan.Evict = append(plan.Evict, Eviction{Victim: h.GPRID, By: r.ID})
	}
	// Nodes on their way back are spoken for by this request.
	for i := range holdings {
		if h := &holdings[i]; h.Cluster == best.cluster && h.Releasing {
			claimed[h.GPRID] = true
		}
	}
	if len(ids) > 0 {
		return Reason{AwaitingEviction, fmt.Sprintf("evicting %s of lower priority on %s", strings.Join(ids, ", "), best.cluster)}, true
	}
	return Reason{AwaitingEviction, fmt.Sprintf("waiting for %d node(s) being released on %s", best.coming, best.cluster)}, true
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
func explain(r Request, all map[string][]Node, holdings []Holding, memo map[shapeKey][]Reason, bestCluster string, bestFree int) []Reason {
	key := shapeKey{strings.Join(r.Clusters, ","), r.GPUsPerNode, r.MemoryPerGPU, r.Nodes, r.AutoGPU, r.GPUShape, r.InstanceType, bestCluster, bestFree}
	if why, ok := memo[key]; ok {
		return why
	}
	matching, schedulable := 0, 0
	for _, c := range r.Clusters {
		for _, n := range all[c] {
			if ShapeMatches(n, r) {
				matching++
				if n.Schedulable {
					schedulable++
				}
			}
		}
	}
	var why []Reason
	switch {
	case matching == 0:
		why = []Reason{{NoMatchingNodes, fmt.Sprintf("no node on %s matches %s", strings.Join(r.Clusters, ", "), describe(r))}}
	case schedulable == 0:
		why = []Reason{{NodesUnavailable, fmt.Sprintf("all %d node(s) matching %s are unhealthy, cordoned or unmanaged", matching, describe(r))}}
	default:
		var holders []string
		for _, h := range holdings {
			if h.Cluster == bestCluster && len(holders) < 5 {
				holders = append(holders, h.GPRID)
			}
		}
		msg := fmt.Sprintf("needs %d free node(s) with %s on one cluster; most free: %d on %s",
			r.Nodes, describe(r), bestFree, bestCluster)
		if len(holders) > 0 {
			msg += " (held by " + strings.Join(holders, ", ") + ")"
		}
		why = []Reason{{InsufficientNodes, msg}}
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
func Estimate(s Snapshot) map[string]time.Time { return EstimateHead(s, 0) }

// EstimateHead is Estimate for the first head GPRs of the queue (all when it is
// 0): exact for them, since a GPR's start never depends on those behind it.
func EstimateHead(s Snapshot, head int) map[string]time.Time {
	// Schedulable nodes by index; freeAt[i] is when node i is next free (Unix
	// ns, at least now). Integers and indexes keep the inner loop free of
	// string keys and allocations: it runs for every node of every request.
	now := s.Now.UnixNano()
	var nodes []Node
	index := map[string]int{}
	byCluster := map[string][]int{}
	for _, n := range s.Nodes {
		if n.Schedulable {
			index[n.Key()] = len(nodes)
			byCluster[n.Cluster] = append(byCluster[n.Cluster], len(nodes))
			nodes = append(nodes, n)
		}
	}
	freeAt := make([]int64, len(nodes))
	for i := range freeAt {
		freeAt[i] = now
	}
	wsFree := map[string]int64{}
	for _, h := range s.Holdings {
		at := h.FreeAt.UnixNano()
		for _, n := range h.Nodes {
			if i, ok := index[h.Cluster+"/"+n]; ok && at > freeAt[i] {
				freeAt[i] = at
			}
		}
		if at > wsFree[h.Workspace] {
			wsFree[h.Workspace] = at
		}
	}
	out := map[string]time.Time{}
	type slot struct {
		i  int
		at int64
	}
	var slots, best []slot
	var buf [2][]slot // the best cluster's slots and the current one's, reused
	played := 0
	for r := range s.ordered() {
		if head > 0 && played >= head {
			break
		}
		played++
		best = nil
		var bestAt int64
		bestBuf := 1 // the buffer holding best; the other one is filled
		for _, c := range r.Clusters {
			cur := 1 - bestBuf
			slots = buf[cur][:0]
			for _, i := range byCluster[c] {
				if ShapeMatches(nodes[i], r) {
					slots = append(slots, slot{i, freeAt[i]})
				}
			}
			buf[cur] = slots
			if len(slots) < r.Nodes {
				continue
			}
			slices.SortFunc(slots, func(a, b slot) int { return cmp.Compare(a.at, b.at) })
			at := max(slots[r.Nodes-1].at, wsFree[r.Workspace])
			// Of the nodes free by then, take those that free up last, leaving
			// the earlier ones for requests that can start sooner.
			end := r.Nodes
			for end < len(slots) && slots[end].at <= at {
				end++
			}
			if best == nil || at < bestAt {
				best, bestAt, bestBuf = slots[end-r.Nodes:end], at, cur
			}
		}
		if best == nil {
			continue
		}
		out[r.ID] = time.Unix(0, bestAt).In(s.Now.Location())
		end := bestAt + int64(r.ExitDuration)
		for _, sl := range best {
			freeAt[sl.i] = end
		}
		wsFree[r.Workspace] = end
	}
	return out
}
