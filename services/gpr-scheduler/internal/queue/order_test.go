package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOrderFollowsLess applies random inserts, updates (priority and age
// changes) and removals and compares the Order with a sorted reference after
// each one, neighbours included.
func TestOrderFollowsLess(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	o := NewOrder()
	ref := map[string]Request{}
	for step := range 1000 {
		id := fmt.Sprintf("g%03d", rng.IntN(60))
		switch rng.IntN(4) {
		case 0:
			o.Remove(id)
			delete(ref, id)
		default:
			r := Request{ID: id, Workspace: "w", Priority: 1 + rng.IntN(5),
				CreatedAt: t0.Add(time.Duration(rng.IntN(50)) * time.Second)}
			o.Set(r)
			ref[id] = r
		}
		want := make([]Request, 0, len(ref))
		for _, r := range ref {
			want = append(want, r)
		}
		slices.SortFunc(want, Less)
		got := o.Slice()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d: order differs (-want +got):\n%s", step, diff)
		}
		if o.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, o.Len(), len(want))
		}
		for i, r := range want {
			prev, ok := o.Before(r)
			if ok != (i > 0) || ok && prev.ID != want[i-1].ID {
				t.Fatalf("step %d: Before(%s) = %s,%v", step, r.ID, prev.ID, ok)
			}
			next, ok := o.After(r)
			if ok != (i < len(want)-1) || ok && next.ID != want[i+1].ID {
				t.Fatalf("step %d: After(%s) = %s,%v", step, r.ID, next.ID, ok)
			}
			if g, ok := o.Get(r.ID); !ok || g.Priority != r.Priority {
				t.Fatalf("step %d: Get(%s) = %+v,%v", step, r.ID, g, ok)
			}
		}
	}
}
