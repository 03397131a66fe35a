package standalone_test

import (
	"context"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"

	"github.com/open-egs/egs/services/provisioner/sim"
)

// On worker-2 of the default scenario one node has 80 GB GPUs. Three
// workspaces want it: low (priority 20, evictable, requeued when evicted),
// mid (priority 120, evictable, not requeued) and high (priority 250). Each
// arrival evicts the one before: an eviction chain.
func TestEvictionChain(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", runScheduler)
	ctx := context.Background()
	yes, no := true, false
	file := func(ws string, prio int, evictable, requeue *bool) string {
		return fileOnWorker2(t, nc, ws, prio, "1h", evictable, requeue)
	}
	get := func(id string) rpc.GPR {
		t.Helper()
		g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: id})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	waitFor := func(id string, ok func(rpc.GPR) bool, what string) rpc.GPR {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			g := get(id)
			if ok(g) {
				return g
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s is %s/%s (%s)", what, id, g.State, g.ProvisioningStatus, g.Reason)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	provisioned := func(g rpc.GPR) bool { return g.State == "Provisioned" }

	low := file("low", 20, &yes, &yes)
	waitFor(low, provisioned, "low alone")
	mid := file("mid", 120, &yes, &no)
	waitFor(mid, provisioned, "mid evicts low")
	g := waitFor(low, func(g rpc.GPR) bool { return g.State == "Queued" && g.EvictedBy == mid }, "low requeued")
	if g.RetryCount != 1 || g.QueuePosition != 1 || len(g.PendingReasons) == 0 {
		t.Errorf("requeued low: retries %d position %d reasons %+v", g.RetryCount, g.QueuePosition, g.PendingReasons)
	}

	high := file("high", 250, nil, nil)
	waitFor(high, provisioned, "high evicts mid")
	g = waitFor(mid, func(g rpc.GPR) bool { return g.State == "Evicted" }, "mid evicted for good")
	if g.ProvisioningStatus != "Error" || g.FailureReason != "evicted by "+high {
		t.Errorf("evicted mid: %s %q", g.ProvisioningStatus, g.FailureReason)
	}
	// high does not allow eviction: low waits, and says why.
	time.Sleep(200 * time.Millisecond)
	g = get(low)
	if g.State != "Queued" || g.PendingReasons[0].Code != "INSUFFICIENT_FREE_NODES" {
		t.Errorf("low after high: %s %+v", g.State, g.PendingReasons)
	}
	allocs, err := rpc.Call[rpc.AllocationList](ctx, nc, events.RPCGPRAllocations, rpc.Empty{})
	if err != nil || len(allocs.Allocations) != 1 || allocs.Allocations[0].GPRID != high {
		t.Fatalf("ledger: %+v %v", allocs.Allocations, err)
	}
}
