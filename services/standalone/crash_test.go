package standalone_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"

	scheduler "github.com/open-egs/egs/services/gpr-scheduler/service"
	provisioner "github.com/open-egs/egs/services/provisioner/service"
	"github.com/open-egs/egs/services/provisioner/sim"
	"github.com/open-egs/egs/services/standalone"
	workspace "github.com/open-egs/egs/services/workspace/service"
)

// proc is one service running on its own connection, as its own process would.
type proc struct {
	// gate, when set, holds the crash until it is closed (so a reply the
	// test needs is out before the process dies).
	gate    chan struct{}
	nc      *nats.Conn
	cancel  context.CancelFunc
	done    chan error
	crashed chan struct{}
	once    sync.Once
}

type runFunc func(ctx context.Context, nc *nats.Conn, ready func(), crash func(point string)) error

// launch starts a service and waits until it is ready. crashAt names the
// crash point at which it dies: its connection is closed at once, with no
// drain, no acks and no further publishes, and its context is cancelled.
func launch(t testing.TB, url string, crashAt string, run runFunc) *proc {
	return launchGated(t, url, crashAt, false, run)
}

// launchGated is launch whose crash waits for p.gate to be closed.
func launchGated(t testing.TB, url string, crashAt string, gated bool, run runFunc) *proc {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{nc: nc, cancel: cancel, done: make(chan error, 1), crashed: make(chan struct{}), gate: make(chan struct{})}
	if crashAt == "" || !gated {
		close(p.gate)
	}
	crash := func(point string) {
		if point != crashAt {
			return
		}
		select {
		case <-p.gate:
		case <-time.After(10 * time.Second):
		}
		p.once.Do(func() {
			nc.Close()
			cancel()
			close(p.crashed)
		})
	}
	ready := make(chan struct{})
	var readyOnce sync.Once
	go func() { p.done <- run(ctx, nc, func() { readyOnce.Do(func() { close(ready) }) }, crash) }()
	select {
	case <-ready:
	case err := <-p.done:
		t.Fatalf("service stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready within 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
		nc.Close()
	})
	return p
}

// waitCrash waits until the service died at its crash point and returned.
func (p *proc) waitCrash(t testing.TB) {
	t.Helper()
	select {
	case <-p.crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the crash point was never reached")
	}
	select {
	case <-p.done:
		p.done <- nil // for cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("crashed service did not return")
	}
}

type cluster struct {
	clients map[string]kubernetes.Interface
}

func runProvisioner(c cluster) runFunc {
	return func(ctx context.Context, nc *nats.Conn, ready func(), crash func(string)) error {
		cfg := standalone.DefaultServices().Provisioner
		cfg.AckWait, cfg.HandlerTimeout = time.Second, 500*time.Millisecond
		return provisioner.Run(ctx, provisioner.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready, Clusters: c.clients, CrashPoint: crash})
	}
}

func runScheduler(ctx context.Context, nc *nats.Conn, ready func(), crash func(string)) error {
	cfg := standalone.DefaultServices().Scheduler
	cfg.LeaseTTL = 3 * time.Second // a crashed replica's lease expires soon
	return scheduler.Run(ctx, scheduler.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready, CrashPoint: crash})
}

func runWorkspace(ctx context.Context, nc *nats.Conn, ready func(), _ func(string)) error {
	return workspace.Run(ctx, workspace.Deps{Config: standalone.DefaultServices().Workspace, NATS: nc, Log: quiet(), Ready: ready})
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var admin = rpc.Caller{Subject: "test", Role: "admin"}

func setupWorkspaceAndGPR(t *testing.T, nc *nats.Conn) string {
	t.Helper()
	ctx := context.Background()
	if _, err := rpc.Call[rpc.Workspace](ctx, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
		Name: "team-a", Clusters: []string{"worker-1"}, Username: "alice", Email: "alice@example.com"}); err != nil {
		t.Fatalf("create workspace: %v", err)
	}
	rep, err := rpc.Call[rpc.CreateGPRReply](ctx, nc, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: admin, Spec: rpc.GPRSpec{
		Name: "train", Workspace: "team-a", AutoCluster: true, AutoGPU: true, GPUsPerNode: 8, Nodes: 1,
		MemoryPerGPU: 80, ExitDuration: "1h", Priority: 200}})
	if err != nil {
		t.Fatalf("create gpr: %v", err)
	}
	return rep.GPRID
}

// fileOnWorker2 creates workspace ws on worker-2 of the default scenario and
// files one GPR for its single 80 GB node (8 GPUs, the given priority, exit
// duration and eviction options); it returns the GPR's id.
func fileOnWorker2(t *testing.T, nc *nats.Conn, ws string, prio int, exit string, evictable, requeue *bool) string {
	t.Helper()
	ctx := context.Background()
	if _, err := rpc.Call[rpc.Workspace](ctx, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
		Name: ws, Clusters: []string{"worker-2"}, Username: "u", Email: "u@example.com"}); err != nil {
		t.Fatal(err)
	}
	rep, err := rpc.Call[rpc.CreateGPRReply](ctx, nc, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: admin, Spec: rpc.GPRSpec{
		Name: ws, Workspace: ws, AutoCluster: true, AutoGPU: true, GPUsPerNode: 8, Nodes: 1, MemoryPerGPU: 80,
		ExitDuration: exit, Priority: prio, EnableEviction: evictable, RequeueOnFailure: requeue}})
	if err != nil {
		t.Fatal(err)
	}
	return rep.GPRID
}

func waitProvisioned(t *testing.T, nc *nats.Conn, id string) rpc.GPR {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := rpc.Call[rpc.GPR](context.Background(), nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: id})
		if err == nil && g.ProvisioningStatus == "Successful" {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not provisioned: %+v %v", id, g, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamEvents returns the event names stored in stream for subjects matching filter.
func streamEvents(t *testing.T, js jetstream.JetStream, stream, filter string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ev, err := bus.ParseEvent(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			counts[ev.Type]++
		}
		if n == 0 {
			return counts
		}
	}
}

func assertNodeHandedOver(t *testing.T, c cluster, g rpc.GPR) {
	t.Helper()
	node, err := c.clients[g.Cluster].CoreV1().Nodes().Get(context.Background(), g.NodeNames[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if node.Labels["egs.io/gpr"] != g.GPRID || node.Labels["egs.io/workspace"] != "team-a" {
		t.Errorf("node labels %v", node.Labels)
	}
	taints := 0
	for _, tn := range node.Spec.Taints {
		if tn.Key == "egs.io/workspace" {
			taints++
		}
	}
	if taints != 1 {
		t.Errorf("node has %d egs taints, want 1", taints)
	}
}

func assertExactlyOnce(t *testing.T, js jetstream.JetStream, id string) {
	t.Helper()
	got := streamEvents(t, js, events.StreamGPR, "egs.gpr.v1.team-a."+id+".>")
	for _, ev := range []events.GPREvent{events.GPRCreated, events.GPRQueued, events.GPRAdmitted, events.GPRProvisioned} {
		if n := got[events.EventType("gpr", string(ev))]; n != 1 {
			t.Errorf("%s stored %d times, want once (all: %v)", ev, n, got)
		}
	}
	applied := streamEvents(t, js, events.StreamProvision, "egs.provision.v1.team-a."+id+".applied")
	if n := applied[events.EventType("provision", events.ProvisionApplied)]; n != 1 {
		t.Errorf("applied reported %d times, want once (all: %v)", n, applied)
	}
}

func TestSchedulerCrashBetweenAdmissionAndProvisioning(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	first := launchGated(t, srv.ClientURL(), scheduler.CrashAfterAdmit, true, runScheduler)

	id := setupWorkspaceAndGPR(t, nc) // the scheduler dies once the reply is out
	close(first.gate)
	first.waitCrash(t)

	// The admission is stored, but no command went out.
	kv, err := js.KeyValue(context.Background(), events.BucketGPRs)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(e.Value()), `"state":"Provisioning"`) {
		t.Fatalf("after the crash the stored GPR is %s", e.Value())
	}

	launch(t, srv.ClientURL(), "", runScheduler)
	g := waitProvisioned(t, nc, id)
	assertNodeHandedOver(t, c, g)
	assertExactlyOnce(t, js, id)
}

func TestProvisionerCrashAfterApply(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Default())}
	first := launch(t, srv.ClientURL(), provisioner.CrashAfterApply, runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	launch(t, srv.ClientURL(), "", runScheduler)

	id := setupWorkspaceAndGPR(t, nc)
	first.waitCrash(t)

	launch(t, srv.ClientURL(), "", runProvisioner(c))
	g := waitProvisioned(t, nc, id)
	assertNodeHandedOver(t, c, g)
	assertExactlyOnce(t, js, id)
}
