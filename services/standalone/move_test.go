package standalone_test

import (
	"context"
	"errors"
	"testing"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"

	"github.com/open-egs/egs/services/provisioner/sim"
)

// TestAdminMovesQueuedGPRs: an admin moves queued GPRs up and down; the
// queue positions follow, across priorities too, and the ends refuse.
func TestAdminMovesQueuedGPRs(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", runScheduler)
	ctx := context.Background()
	// worker-2's one 80 GB node is held; a, b and c queue for it.
	file := func(ws string, prio int) string { return fileOnWorker2(t, nc, ws, prio, "1h", nil, nil) }
	waitProvisioned(t, nc, file("holder", 100))
	a, b, cc := file("a", 100), file("b", 100), file("c", 150)
	names := map[string]string{a: "a", b: "b", cc: "c"}
	order := func() (string, map[string]int) {
		t.Helper()
		got, prios := make([]string, 3), map[string]int{}
		for _, id := range []string{a, b, cc} {
			g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: id})
			if err != nil {
				t.Fatal(err)
			}
			if g.QueuePosition < 1 || g.QueuePosition > 3 {
				t.Fatalf("%s at position %d", names[id], g.QueuePosition)
			}
			got[g.QueuePosition-1] = names[id]
			prios[names[id]] = g.Priority
		}
		return got[0] + got[1] + got[2], prios
	}
	move := func(id, dir string) error {
		_, err := rpc.Call[rpc.Empty](ctx, nc, events.RPCGPRMove, rpc.MoveGPRRequest{Caller: admin, GPRID: id, Direction: dir})
		return err
	}
	if got, _ := order(); got != "cab" {
		t.Fatalf("initial order %s, want cab", got)
	}
	steps := []struct {
		id, dir, want string
		prio          map[string]int
	}{
		{b, rpc.MoveUp, "cba", map[string]int{"a": 100, "b": 100, "c": 150}},    // swaps with a (same priority)
		{b, rpc.MoveUp, "bca", map[string]int{"a": 100, "b": 150, "c": 150}},    // takes c's priority, goes ahead of it
		{cc, rpc.MoveDown, "bac", map[string]int{"a": 100, "b": 150, "c": 100}}, // takes a's priority, goes behind it
		{a, rpc.MoveUp, "abc", map[string]int{"a": 150, "b": 150, "c": 100}},
	}
	for i, st := range steps {
		if err := move(st.id, st.dir); err != nil {
			t.Fatalf("step %d: move %s %s: %v", i, names[st.id], st.dir, err)
		}
		got, prios := order()
		if got != st.want {
			t.Fatalf("step %d: order %s, want %s", i, got, st.want)
		}
		for n, p := range st.prio {
			if prios[n] != p {
				t.Errorf("step %d: %s has priority %d, want %d", i, n, prios[n], p)
			}
		}
	}
	var re *rpc.Error
	if err := move(a, rpc.MoveUp); !errors.As(err, &re) || re.Code != rpc.Conflict {
		t.Errorf("moving the first up: %v, want CONFLICT", err)
	}
	if err := move(cc, rpc.MoveDown); !errors.As(err, &re) || re.Code != rpc.Conflict {
		t.Errorf("moving the last down: %v, want CONFLICT", err)
	}
	editor := rpc.Caller{Subject: "e", Role: "Editor", Workspace: "a"}
	if _, err := rpc.Call[rpc.Empty](ctx, nc, events.RPCGPRMove, rpc.MoveGPRRequest{Caller: editor, GPRID: a, Direction: rpc.MoveDown}); !errors.As(err, &re) || re.Code != rpc.Forbidden {
		t.Errorf("an Editor moving: %v, want FORBIDDEN", err)
	}
	if got, _ := order(); got != "abc" {
		t.Errorf("refused moves changed the order: %s", got)
	}
}
