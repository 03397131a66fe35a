package standalone_test

import (
	"context"
	"slices"
	"sync"
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

// clock is a settable clock for the scheduler.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestExpiryWithMilestones(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	clk := &clock{now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", func(ctx context.Context, nc *nats.Conn, ready func(), _ func(string)) error {
		cfg := standalone.DefaultServices().Scheduler
		cfg.RetryInterval = 20 * time.Millisecond // the clock jumps; let the loop look often
		return scheduler.Run(ctx, scheduler.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready, Now: clk.Now})
	})

	var mu sync.Mutex
	var seen []events.GPR
	sub, err := nc.Subscribe(events.SubjectGPRAll, func(m *nats.Msg) {
		ev, err := bus.ParseEvent(m.Data)
		if err != nil {
			t.Error(err)
			return
		}
		var p events.GPR
		if err := ev.Decode(&p); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	id := setupWorkspaceAndGPR(t, nc) // exitDuration 1h
	waitProvisioned(t, nc, id)

	for _, step := range []time.Duration{16, 16, 16, 8, 8} {
		clk.Add(step * time.Minute) // 16, 32, 48, 56 (5 minutes before exit), 64 minutes
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	var g rpc.GPR
	for {
		g, err = rpc.Call[rpc.GPR](context.Background(), nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: id})
		if err != nil {
			t.Fatal(err)
		}
		if g.State == "Complete" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g.ProvisioningStatus != "Complete" || g.InternalState != "Released" || g.EarlyRelease || g.GPUsAllocated != 0 {
		t.Fatalf("after expiry: %s/%s earlyRelease=%v gpus=%d", g.ProvisioningStatus, g.InternalState, g.EarlyRelease, g.GPUsAllocated)
	}
	allocs, err := rpc.Call[rpc.AllocationList](context.Background(), nc, events.RPCGPRAllocations, rpc.Empty{})
	if err != nil || len(allocs.Allocations) != 0 {
		t.Fatalf("ledger after expiry: %+v %v", allocs, err)
	}

	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var names []string
	var pcts []int
	for _, p := range seen {
		if p.GPRID != id {
			continue
		}
		names = append(names, string(p.Event))
		if p.Event == events.GPRMilestone {
			pcts = append(pcts, p.Percent)
		}
		if p.Event == events.GPRReleased && p.Reason != "expired" {
			t.Errorf("released with reason %q, want expired", p.Reason)
		}
	}
	want := []string{"created", "queued", "admitted", "provisioned", "milestone", "milestone", "milestone", "expiring", "released", "completed"}
	if !slices.Equal(names, want) {
		t.Errorf("events %v, want %v", names, want)
	}
	if !slices.Equal(pcts, []int{25, 50, 75}) {
		t.Errorf("milestones %v, want 25 50 75", pcts)
	}
}

func TestIdleReportReleasesOnlyEnforcingGPRs(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", runScheduler)
	ctx := context.Background()
	// The telemetry service owns this stream; here the test stands in for it.
	if _, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{Name: events.StreamTelemetry,
		Subjects: []string{events.SubjectTelemetryAll}})); err != nil {
		t.Fatal(err)
	}
	idle := "10m"
	ids := map[bool]string{}
	for _, enforce := range []bool{true, false} {
		ws := map[bool]string{true: "enforcing", false: "lenient"}[enforce]
		if _, err := rpc.Call[rpc.Workspace](ctx, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
			Name: ws, Clusters: []string{"worker-1"}, Username: "u", Email: "u@example.com"}); err != nil {
			t.Fatal(err)
		}
		rep, err := rpc.Call[rpc.CreateGPRReply](ctx, nc, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: admin, Spec: rpc.GPRSpec{
			Name: "g", Workspace: ws, AutoCluster: true, AutoGPU: true, GPUsPerNode: 8, Nodes: 1, ExitDuration: "1h",
			Priority: 100, IdleTimeout: &idle, EnforceIdleTimeout: enforce}})
		if err != nil {
			t.Fatal(err)
		}
		ids[enforce] = rep.GPRID
	}
	pub := bus.NewPublisher(js)
	for enforce, id := range ids {
		g := waitProvisioned(t, nc, id)
		subj, _ := events.TelemetryIdleSubject(g.Workspace, id)
		ev, err := bus.NewEvent(id+".idle.1", "egs/telemetry", events.EventType("telemetry", "idle"), id, time.Now(),
			events.GPRIdle{GPRID: id, Workspace: g.Workspace, IdleSince: g.StartedAt.Add(time.Second), At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, subj, ev); err != nil {
			t.Fatalf("publish idle report (enforce=%v): %v", enforce, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: ids[true]})
		if err != nil {
			t.Fatal(err)
		}
		if g.State == "Complete" {
			if g.ProvisioningStatus != "TimedOut" || g.Reason != "idle-timeout" {
				t.Fatalf("idle release: status %s reason %s", g.ProvisioningStatus, g.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("enforcing GPR not released after an idle report: %s", g.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: ids[false]})
	if err != nil || g.ProvisioningStatus != "Successful" {
		t.Fatalf("a GPR that does not enforce its idle timeout was touched: %+v %v", g, err)
	}
}

// A command lost on the way (here: purged from its stream before the
// provisioner ever saw it) is sent again, and the GPR still gets its nodes.
func TestLostCommandIsSentAgain(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	prov := launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", func(ctx context.Context, nc *nats.Conn, ready func(), _ func(string)) error {
		cfg := standalone.DefaultServices().Scheduler
		cfg.Resend, cfg.RetryInterval = 300*time.Millisecond, 50*time.Millisecond
		return scheduler.Run(ctx, scheduler.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready})
	})
	// The provisioner goes away, so the apply command waits in its stream...
	prov.cancel()
	<-prov.done
	prov.done <- nil
	id := setupWorkspaceAndGPR(t, nc)
	ctx := context.Background()
	cmds, err := js.Stream(ctx, events.StreamCommands)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cmds.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no apply command was sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ...and is lost.
	if err := cmds.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	g := waitProvisioned(t, nc, id)
	assertNodeHandedOver(t, c, g)
}

// When nothing else changes, a queued GPR starts exactly when its estimate said.
func TestWaitTimeEstimateIsExact(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	clk := &clock{now: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", func(ctx context.Context, nc *nats.Conn, ready func(), _ func(string)) error {
		cfg := standalone.DefaultServices().Scheduler
		cfg.RetryInterval = 20 * time.Millisecond
		return scheduler.Run(ctx, scheduler.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready, Now: clk.Now})
	})
	ctx := context.Background()
	// worker-2 has one node with 80 GB GPUs; "first" holds it for 90 minutes.
	file := func(ws, exit string) string { return fileOnWorker2(t, nc, ws, 100, exit, nil, nil) }
	first := file("first", "1h30m")
	held := waitProvisioned(t, nc, first)
	clk.Add(7 * time.Minute)
	second := file("second", "1h")
	g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: second})
	if err != nil {
		t.Fatal(err)
	}
	want := held.StartedAt.Add(90 * time.Minute)
	if !g.EstimatedStart.Equal(want) || g.EstimatedWait != 83*time.Minute {
		t.Fatalf("estimate: start %s wait %s, want %s and 1h23m", g.EstimatedStart, g.EstimatedWait, want)
	}
	wt, err := rpc.Call[rpc.WaitTime](ctx, nc, events.RPCGPRWaitTime, rpc.CreateGPRRequest{Caller: admin, Spec: rpc.GPRSpec{
		Name: "probe", Workspace: "second", AutoCluster: true, AutoGPU: true, GPUsPerNode: 8, Nodes: 1, MemoryPerGPU: 80,
		ExitDuration: "1h", Priority: 100}})
	if err != nil {
		t.Fatal(err)
	}
	// A probe for the same workspace queues behind "second": it starts when second ends.
	if !wt.EstimatedStart.Equal(want.Add(time.Hour)) {
		t.Errorf("waittime probe: %s, want %s", wt.EstimatedStart, want.Add(time.Hour))
	}
	clk.Add(want.Sub(clk.Now())) // exactly the estimated start: first expires
	got := waitProvisioned(t, nc, second)
	if !got.StartedAt.Equal(want) {
		t.Fatalf("second started at %s, estimated %s", got.StartedAt, want)
	}
}
