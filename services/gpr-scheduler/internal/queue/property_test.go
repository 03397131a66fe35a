package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// randomSnapshot builds an arbitrary but valid scheduling situation.
func randomSnapshot(rng *rand.Rand) Snapshot {
	products := []string{"H100", "A100", "L4"}
	var s Snapshot
	s.Now = t0
	clusters := 1 + rng.IntN(3)
	for c := range clusters {
		for i := range rng.IntN(12) {
			p := products[rng.IntN(len(products))]
			s.Nodes = append(s.Nodes, Node{Cluster: fmt.Sprintf("c%d", c), Name: fmt.Sprintf("n%d-%d", c, i),
				InstanceType: "it-" + p, GPUProduct: p, GPUMemoryGB: []int{24, 40, 80}[rng.IntN(3)],
				GPUCount: []int{1, 4, 8}[rng.IntN(3)], Schedulable: rng.IntN(8) > 0})
		}
	}
	// Some nodes are held, each by one GPR of its own workspace (or several nodes by one).
	perm := rng.Perm(len(s.Nodes))
	for k := 0; k < len(perm); {
		n := 1 + rng.IntN(2)
		var nodes []string
		cluster := s.Nodes[perm[k]].Cluster
		for ; n > 0 && k < len(perm); k++ {
			if rng.IntN(2) == 0 || s.Nodes[perm[k]].Cluster != cluster {
				continue
			}
			nodes = append(nodes, s.Nodes[perm[k]].Name)
			n--
		}
		if len(nodes) == 0 {
			continue
		}
		id := fmt.Sprintf("h%d", len(s.Holdings))
		ws := "hw" + id
		if rng.IntN(4) == 0 { // a workspace that also queues GPRs
			ws = fmt.Sprintf("w%d", rng.IntN(8))
		}
		s.Holdings = append(s.Holdings, Holding{GPRID: id, Workspace: ws, Cluster: cluster, Nodes: nodes,
			Priority: 1 + rng.IntN(300), StartedAt: t0.Add(-time.Duration(rng.IntN(100)) * time.Minute),
			Evictable: rng.IntN(2) == 0, Releasing: rng.IntN(6) == 0, FreeAt: t0.Add(time.Hour)})
	}
	for i := range rng.IntN(30) {
		var cs []string
		for c := range clusters {
			if rng.IntN(2) == 0 {
				cs = append(cs, fmt.Sprintf("c%d", c))
			}
		}
		if len(cs) == 0 {
			cs = []string{"c0"}
		}
		r := Request{ID: fmt.Sprintf("g%02d", i), Workspace: fmt.Sprintf("w%d", rng.IntN(8)), Priority: 1 + rng.IntN(300),
			CreatedAt: t0.Add(-time.Duration(rng.IntN(1000)) * time.Second), GPUsPerNode: []int{1, 4, 8}[rng.IntN(3)],
			Nodes: 1 + rng.IntN(3), MemoryPerGPU: []int{0, 24, 40, 80}[rng.IntN(4)], AutoGPU: rng.IntN(2) == 0,
			Clusters: cs, ExitDuration: time.Hour}
		if !r.AutoGPU {
			r.GPUShape = products[rng.IntN(len(products))]
		}
		s.Queue = append(s.Queue, r)
	}
	return s
}

// checkInvariants asserts what must hold of every plan.
func checkInvariants(t *testing.T, s Snapshot, plan Plan) {
	t.Helper()
	nodes := map[string]Node{}
	for _, n := range s.Nodes {
		nodes[n.Key()] = n
	}
	reqs := map[string]Request{}
	for _, r := range s.Queue {
		reqs[r.ID] = r
	}
	taken := map[string]string{}
	busyWS := map[string]bool{}
	holdings := map[string]Holding{}
	for _, h := range s.Holdings {
		holdings[h.GPRID] = h
		busyWS[h.Workspace] = true
		for _, n := range h.Nodes {
			taken[h.Cluster+"/"+n] = h.GPRID
		}
	}
	admitted := map[string]Admission{}
	for _, a := range plan.Admit {
		r, ok := reqs[a.GPRID]
		if !ok {
			t.Fatalf("admitted %s, which is not queued", a.GPRID)
		}
		admitted[a.GPRID] = a
		if busyWS[r.Workspace] {
			t.Fatalf("%s admitted while its workspace %s holds or got a GPR", a.GPRID, r.Workspace)
		}
		busyWS[r.Workspace] = true
		if len(a.Nodes) != r.Nodes || !slices.Contains(r.Clusters, a.Cluster) {
			t.Fatalf("%s got %d nodes on %s, asked %d on %v", a.GPRID, len(a.Nodes), a.Cluster, r.Nodes, r.Clusters)
		}
		for _, name := range a.Nodes {
			key := a.Cluster + "/" + name
			n, ok := nodes[key]
			if !ok || !n.Schedulable || !ShapeMatches(n, r) {
				t.Fatalf("%s got node %s that does not fit it: %+v", a.GPRID, key, n)
			}
			if other, ok := taken[key]; ok {
				t.Fatalf("node %s given to %s while %s holds it", key, a.GPRID, other)
			}
			taken[key] = a.GPRID
		}
	}
	victims := map[string]bool{}
	for _, ev := range plan.Evict {
		h, ok := holdings[ev.Victim]
		by := reqs[ev.By]
		if !ok || !h.Evictable || h.Releasing || h.Priority >= by.Priority || victims[ev.Victim] {
			t.Fatalf("bad eviction %+v of %+v for %+v", ev, h, by)
		}
		victims[ev.Victim] = true
	}
	// A lower-priority GPR never takes nodes a higher one waiting for
	// capacity could have used instead.
	for _, a := range plan.Admit {
		low := reqs[a.GPRID]
		for _, high := range s.Queue {
			if _, ok := admitted[high.ID]; ok || Less(high, low) >= 0 || high.Nodes > low.Nodes || !slices.Contains(high.Clusters, a.Cluster) {
				continue
			}
			fits := true
			for _, name := range a.Nodes {
				fits = fits && ShapeMatches(nodes[a.Cluster+"/"+name], high)
			}
			if !fits {
				continue
			}
			why := plan.Waiting[high.ID]
			if len(why) == 0 || why[0].Code == InsufficientNodes || why[0].Code == NoMatchingNodes {
				t.Fatalf("%s (priority %d) waits (%v) while %s (priority %d) got nodes that fit it: %v",
					high.ID, high.Priority, why, low.ID, low.Priority, a.Nodes)
			}
		}
	}
}

func TestScheduleProperties(t *testing.T) {
	for seed := range uint64(3000) {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		s := randomSnapshot(rng)
		full := Schedule(s)
		checkInvariants(t, s, full)
		for _, r := range s.Queue {
			if full.Position[r.ID] == 0 {
				t.Fatalf("seed %d: %s has no queue position", seed, r.ID)
			}
		}
		fast := Decide(s)
		if diff := cmp.Diff(full.Admit, fast.Admit); diff != "" {
			t.Fatalf("seed %d: Decide admits differently (-Schedule +Decide):\n%s", seed, diff)
		}
		if diff := cmp.Diff(full.Evict, fast.Evict); diff != "" {
			t.Fatalf("seed %d: Decide evicts differently (-Schedule +Decide):\n%s", seed, diff)
		}
	}
}

// indexed returns s as the scheduler passes it: the queue in an Order, the
// free nodes and the workspaces' holders precomputed.
func indexed(s Snapshot) Snapshot {
	covered := map[string]bool{}
	s.Holders = map[string]string{}
	for _, h := range s.Holdings {
		for _, n := range h.Nodes {
			covered[h.Cluster+"/"+n] = true
		}
		s.Holders[h.Workspace] = h.GPRID
	}
	s.Free = []Node{}
	for _, n := range s.Nodes {
		if n.Schedulable && !covered[n.Key()] {
			s.Free = append(s.Free, n)
		}
	}
	s.Order, s.Heads = NewOrder(), NewOrder()
	heads := map[string]Request{}
	for _, r := range s.Queue {
		s.Order.Set(r)
		if _, holds := s.Holders[r.Workspace]; holds {
			continue
		}
		if h, ok := heads[r.Workspace]; !ok || Less(r, h) < 0 {
			heads[r.Workspace] = r
		}
	}
	for _, r := range heads {
		s.Heads.Set(r)
	}
	s.Queue, s.Indexed = nil, true
	return s
}

func TestIndexedSnapshotDecidesAlike(t *testing.T) {
	for seed := range uint64(1500) {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		s := randomSnapshot(rng)
		x := indexed(s)
		for _, run := range []struct {
			name string
			f    func(Snapshot) Plan
		}{{"Schedule", Schedule}, {"Decide", Decide}} {
			plain, idx := run.f(s), run.f(x)
			// Decide over the heads examines fewer GPRs; what it decides is the same.
			plain.Examined, idx.Examined = 0, 0
			if diff := cmp.Diff(plain, idx); diff != "" {
				t.Fatalf("seed %d: %s of the indexed snapshot differs (-plain +indexed):\n%s", seed, run.name, diff)
			}
		}
		if diff := cmp.Diff(Estimate(s), Estimate(x)); diff != "" {
			t.Fatalf("seed %d: Estimate of the indexed snapshot differs:\n%s", seed, diff)
		}
	}
}

func FuzzSchedule(f *testing.F) {
	for _, seed := range []uint64{1, 42, 4711} {
		f.Add(seed, seed+1)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		s := randomSnapshot(rand.New(rand.NewPCG(a, b)))
		plan := Schedule(s)
		checkInvariants(t, s, plan)
		for _, r := range s.Queue {
			if len(plan.Waiting[r.ID]) == 0 && !slices.ContainsFunc(plan.Admit, func(x Admission) bool { return x.GPRID == r.ID }) {
				t.Fatalf("%s neither admitted nor told why it waits", r.ID)
			}
		}
	})
}

// TestHeadIsExact checks that explaining or estimating only the head of the
// queue gives the head exactly what the whole pass gives it.
func TestHeadIsExact(t *testing.T) {
	for seed := range uint64(800) {
		rng := rand.New(rand.NewPCG(seed, seed*31))
		s := randomSnapshot(rng)
		full, est := Schedule(s), Estimate(s)
		n := rng.IntN(len(s.Queue) + 1)
		head, headEst := ScheduleHead(s, n), EstimateHead(s, n)
		q := slices.Clone(s.Queue)
		slices.SortFunc(q, Less)
		if n == 0 {
			n = len(q) // 0 means all
		}
		if len(head.Position) != n {
			t.Fatalf("seed %d: head of %d explains %d", seed, n, len(head.Position))
		}
		for _, r := range q[:n] {
			if head.Position[r.ID] != full.Position[r.ID] {
				t.Fatalf("seed %d: %s position %d, full pass %d", seed, r.ID, head.Position[r.ID], full.Position[r.ID])
			}
			if diff := cmp.Diff(full.Waiting[r.ID], head.Waiting[r.ID]); diff != "" {
				t.Fatalf("seed %d: %s reasons differ (-full +head):\n%s", seed, r.ID, diff)
			}
			if !est[r.ID].Equal(headEst[r.ID]) {
				t.Fatalf("seed %d: %s estimate %v, full %v", seed, r.ID, headEst[r.ID], est[r.ID])
			}
		}
		for _, r := range q[n:] {
			if _, ok := headEst[r.ID]; ok {
				t.Fatalf("seed %d: %s behind the head got an estimate", seed, r.ID)
			}
		}
	}
}
