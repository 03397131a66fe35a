package standalone_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"

	scheduler "github.com/open-egs/egs/services/gpr-scheduler/service"
	"github.com/open-egs/egs/services/provisioner/sim"
	"github.com/open-egs/egs/services/standalone"
)

// TestQueueStatusIsPushed: queued GPRs get egs.queue.v1 events with their
// position, reasons and exact estimated start, refreshed when the queue
// changes, and a last one (position 0) when they leave the queue.
func TestQueueStatusIsPushed(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", func(ctx context.Context, nc *nats.Conn, ready func(), _ func(string)) error {
		cfg := standalone.DefaultServices().Scheduler
		cfg.QueueStatusInterval = 20 * time.Millisecond
		return scheduler.Run(ctx, scheduler.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready})
	})
	ctx := context.Background()
	// worker-2 has one node with 80 GB GPUs: "holder" takes it, "low" and
	// "high" queue for it.
	file := func(ws string, prio int) string { return fileOnWorker2(t, nc, ws, prio, "1h", nil, nil) }
	holder := file("holder", 100)
	held := waitProvisioned(t, nc, holder)
	low := file("low", 50)

	stream, err := js.Stream(ctx, events.StreamQueue)
	if err != nil {
		t.Fatal(err)
	}
	status := func(ws, id string) (events.QueueStatus, bool) {
		subject, _ := events.QueueStatusSubject(ws, id)
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return events.QueueStatus{}, false
		}
		if err != nil {
			t.Fatal(err)
		}
		ev, err := bus.ParseEvent(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		var st events.QueueStatus
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			t.Fatal(err)
		}
		return st, true
	}
	waitStatus := func(ws, id string, ok func(events.QueueStatus) bool, what string) events.QueueStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, found := status(ws, id)
			if found && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last status of %s is %+v (found %v)", what, id, st, found)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	first := waitStatus("low", low, func(st events.QueueStatus) bool { return st.Position == 1 }, "low alone in the queue")
	if first.DelayedCount != 0 {
		t.Errorf("low delayed %d times before anything happened", first.DelayedCount)
	}
	// high arrives and goes ahead: low's start moves an hour later.
	high := file("high", 200)
	hs := waitStatus("high", high, func(st events.QueueStatus) bool { return st.Position == 1 }, "high first in the queue")
	end := held.StartedAt.Add(time.Hour)
	if hs.EstimatedStart == nil || !hs.EstimatedStart.Equal(end) {
		t.Errorf("high's estimated start %v, want the holder's end %v", hs.EstimatedStart, end)
	}
	if len(hs.PendingReasons) == 0 || hs.PendingReasons[0].Code != "INSUFFICIENT_FREE_NODES" {
		t.Errorf("high's reasons %+v, want INSUFFICIENT_FREE_NODES first", hs.PendingReasons)
	}
	ls := waitStatus("low", low, func(st events.QueueStatus) bool { return st.Position == 2 }, "low second")
	if ls.EstimatedStart == nil || !ls.EstimatedStart.Equal(end.Add(time.Hour)) {
		t.Errorf("low's estimated start %v, want an hour after high's %v", ls.EstimatedStart, end)
	}
	if ls.Queued != 2 || !hasCode(ls.PendingReasons, "HIGHER_PRIORITY_AHEAD") || ls.DelayedCount != 1 {
		t.Errorf("low's status %+v, want 2 queued, HIGHER_PRIORITY_AHEAD and delayed once", ls)
	}
	if g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: low}); err != nil || g.DelayedCount != 1 {
		t.Errorf("low's delayedCount through GET: %d (%v), want 1", g.DelayedCount, err)
	}

	// The holder leaves early: high starts (its last status says position 0)
	// and low moves up.
	if _, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRUpdate, rpc.UpdateGPRRequest{Caller: admin, GPRID: holder,
		EarlyRelease: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	waitProvisioned(t, nc, high)
	waitStatus("high", high, func(st events.QueueStatus) bool { return st.Position == 0 }, "high left the queue")
	ls = waitStatus("low", low, func(st events.QueueStatus) bool { return st.Position == 1 }, "low moved up")
	if hasCode(ls.PendingReasons, "HIGHER_PRIORITY_AHEAD") || ls.Queued != 1 {
		t.Errorf("low at the head: %+v", ls)
	}
}

func hasCode(rs []events.PendingReason, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }
