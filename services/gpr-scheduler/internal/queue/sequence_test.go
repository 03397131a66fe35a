package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// world is a small scheduler kept as the real one keeps its state: the
// queue in an Order, holdings, and the inventory; each step applies a
// random operation, then decides and applies the plan.
type world struct {
	rng      *rand.Rand
	now      time.Time
	nodes    []Node
	order    *Order
	holdings []Holding
	nextID   int
}

func (w *world) snapshot() Snapshot {
	return Snapshot{Now: w.now, Queue: w.order.Slice(), Nodes: slices.Clone(w.nodes), Holdings: slices.Clone(w.holdings)}
}

// step applies one random operation: create, update (priority), cancel,
// release, finish a release, a node changing health, a node added.
func (w *world) step() string {
	switch op := w.rng.IntN(10); {
	case op < 4:
		w.nextID++
		products := []string{"H100", "A100"}
		r := Request{ID: fmt.Sprintf("g%03d", w.nextID), Workspace: fmt.Sprintf("w%d", w.rng.IntN(6)),
			Priority: 1 + w.rng.IntN(300), CreatedAt: w.now, GPUsPerNode: []int{1, 4, 8}[w.rng.IntN(3)],
			Nodes: 1 + w.rng.IntN(2), Clusters: []string{"c0", "c1"}[:1+w.rng.IntN(2)], ExitDuration: time.Hour,
			GPUShape: products[w.rng.IntN(2)]}
		w.order.Set(r)
		return "create " + r.ID
	case op == 4 && w.order.Len() > 0:
		q := w.order.Slice()
		r := q[w.rng.IntN(len(q))]
		r.Priority = 1 + w.rng.IntN(300)
		w.order.Set(r)
		return "update " + r.ID
	case op == 5 && w.order.Len() > 0:
		q := w.order.Slice()
		id := q[w.rng.IntN(len(q))].ID
		w.order.Remove(id)
		return "cancel " + id
	case op == 6 && len(w.holdings) > 0:
		i := w.rng.IntN(len(w.holdings))
		w.holdings[i].Releasing, w.holdings[i].Evictable = true, false
		return "release " + w.holdings[i].GPRID
	case op == 7:
		// Releases finish: their nodes come back.
		w.holdings = slices.DeleteFunc(w.holdings, func(h Holding) bool { return h.Releasing })
		return "releases done"
	case op == 8 && len(w.nodes) > 0:
		i := w.rng.IntN(len(w.nodes))
		w.nodes[i].Schedulable = !w.nodes[i].Schedulable
		return "health " + w.nodes[i].Name
	default:
		c := w.rng.IntN(2)
		n := Node{Cluster: fmt.Sprintf("c%d", c), Name: fmt.Sprintf("n%d-%d", c, len(w.nodes)), GPUProduct: []string{"H100", "A100"}[w.rng.IntN(2)],
			GPUCount: 8, GPUMemoryGB: 80, Schedulable: true}
		w.nodes = append(w.nodes, n)
		return "add " + n.Name
	}
}

// apply carries out a plan as the scheduler does: victims start releasing,
// admitted GPRs leave the queue and hold their nodes.
func (w *world) apply(plan Plan) {
	for _, ev := range plan.Evict {
		for i := range w.holdings {
			if w.holdings[i].GPRID == ev.Victim {
				w.holdings[i].Releasing, w.holdings[i].Evictable = true, false
			}
		}
	}
	for _, a := range plan.Admit {
		r, _ := w.order.Get(a.GPRID)
		w.order.Remove(a.GPRID)
		w.holdings = append(w.holdings, Holding{GPRID: r.ID, Workspace: r.Workspace, Cluster: a.Cluster, Nodes: a.Nodes,
			Priority: r.Priority, StartedAt: w.now, FreeAt: w.now.Add(r.ExitDuration), Evictable: w.rng.IntN(2) == 0})
	}
}

// TestRandomSequences runs random sequences of operations and checks, after
// every decision, the invariants of checkInvariants (no node given twice, no
// workspace holding two GPRs, a higher priority never waiting behind a lower
// one for the same nodes without a reason), that no node is ever held by two
// GPRs across steps, and that the indexed snapshot decides as the plain one.
func TestRandomSequences(t *testing.T) {
	admitted, evicted := 0, 0
	for seed := range uint64(60) {
		w := &world{rng: rand.New(rand.NewPCG(seed, 99)), now: t0, order: NewOrder()}
		var trail []string
		for range 120 {
			trail = append(trail, w.step())
			w.now = w.now.Add(time.Second)
			s := w.snapshot()
			full := Schedule(s)
			checkInvariants(t, s, full)
			fast := Decide(indexed(s))
			if diff := cmp.Diff(full.Admit, fast.Admit); diff != "" {
				t.Fatalf("seed %d after %v: indexed Decide admits differently:\n%s", seed, trail, diff)
			}
			if diff := cmp.Diff(full.Evict, fast.Evict); diff != "" {
				t.Fatalf("seed %d after %v: indexed Decide evicts differently:\n%s", seed, trail, diff)
			}
			w.apply(fast)
			admitted, evicted = admitted+len(fast.Admit), evicted+len(fast.Evict)
			held := map[string]string{}
			ws := map[string]string{}
			for _, h := range w.holdings {
				for _, n := range h.Nodes {
					if other, ok := held[h.Cluster+"/"+n]; ok {
						t.Fatalf("seed %d after %v: node %s/%s held by %s and %s", seed, trail, h.Cluster, n, other, h.GPRID)
					}
					held[h.Cluster+"/"+n] = h.GPRID
				}
				if other, ok := ws[h.Workspace]; ok {
					t.Fatalf("seed %d after %v: workspace %s holds %s and %s", seed, trail, h.Workspace, other, h.GPRID)
				}
				ws[h.Workspace] = h.GPRID
			}
		}
	}
	// The sequences must exercise what they check.
	if admitted < 100 || evicted < 10 {
		t.Fatalf("sequences admitted %d and evicted %d: too few to mean anything", admitted, evicted)
	}
	t.Logf("%d admissions, %d evictions", admitted, evicted)
}
