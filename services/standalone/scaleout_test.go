package standalone_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"

	scheduler "github.com/open-egs/egs/services/gpr-scheduler/service"
	"github.com/open-egs/egs/services/provisioner/sim"
	"github.com/open-egs/egs/services/standalone"
)

func runReplica(ctx context.Context, nc *nats.Conn, ready func(), _ func(string)) error {
	cfg := standalone.DefaultServices().Scheduler
	cfg.LeaseTTL = 2 * time.Second
	return scheduler.Run(ctx, scheduler.Deps{Config: cfg, NATS: nc, Log: quiet(), Ready: ready})
}

// startReplica starts a scheduler replica without waiting for it to become
// active (standbys never do until the active one dies).
func startReplica(t *testing.T, url string) *proc {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- runReplica(ctx, nc, func() {}, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("replica did not stop")
		}
		nc.Close()
	})
	return p
}

// kill makes the replica die abruptly: no drain, no lease release.
func (p *proc) kill() {
	p.nc.Close()
	p.cancel()
}

// Three scheduler replicas, 1,000 GPRs filed concurrently by 8 clients, and
// replicas killed at random meanwhile: no node is ever given to two GPRs,
// every GPR a client was told about exists, and none is admitted twice.
func TestReplicasKilledAtRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("scale-out test")
	}
	const gprs, nodesPerCluster = 1000, 250
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	c := cluster{clients: sim.Clientsets(sim.Generate(2, nodesPerCluster))}
	launch(t, srv.ClientURL(), "", runProvisioner(c))
	launch(t, srv.ClientURL(), "", runWorkspace)
	ctx := context.Background()
	for i := range gprs {
		if _, err := rpc.Call[rpc.Workspace](ctx, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
			Name: fmt.Sprintf("ws-%04d", i), Clusters: []string{"worker-1", "worker-2"}, Username: "u", Email: "u@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	replicas := []*proc{startReplica(t, srv.ClientURL()), startReplica(t, srv.ClientURL()), startReplica(t, srv.ClientURL())}

	// The killer: every 0.8-1.6 s one replica at random dies and a new one starts.
	stop := make(chan struct{})
	killed := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(800+rng.IntN(800)) * time.Millisecond):
			}
			mu.Lock()
			i := rng.IntN(len(replicas))
			replicas[i].kill()
			replicas[i] = startReplica(t, srv.ClientURL())
			killed++
			mu.Unlock()
		}
	})

	// The clients: each GPR is filed until some replica answers; a timeout
	// may hide a stored GPR, which is then filed again (a second GPR).
	ids := make(chan string, 2*gprs)
	work := make(chan int, gprs)
	for i := range gprs {
		work <- i
	}
	close(work)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				for attempt := 0; ; attempt++ {
					rep, err := rpc.Call[rpc.CreateGPRReply](ctx, nc, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: admin,
						Spec: rpc.GPRSpec{Name: "g", Workspace: fmt.Sprintf("ws-%04d", i), AutoCluster: true, AutoGPU: true,
							GPUsPerNode: 8, Nodes: 1, ExitDuration: "1h", Priority: 1 + i%300}})
					if err == nil {
						ids <- rep.GPRID
						break
					}
					var re *rpc.Error
					if !errors.As(err, &re) || attempt > 1200 {
						t.Errorf("file GPR %d: %v", i, err)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	// Let the clients finish, kill a while longer, then stop killing.
	for len(ids) < gprs && !t.Failed() {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // keep killing while the admissions go on
	close(stop)
	wg.Wait()
	close(ids)
	t.Logf("%d replicas killed while filing", killed)

	// Every GPR a client got an id for exists; 500 are provisioned.
	deadline := time.Now().Add(60 * time.Second)
	var provisioned int
	accepted := 0
	for id := range ids {
		accepted++
		for {
			g, err := rpc.Call[rpc.GPR](ctx, nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: id})
			if err == nil {
				if g.State == "Provisioned" {
					provisioned++
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("accepted GPR %s lost: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d GPRs accepted", accepted)
	for provisioned < 2*nodesPerCluster && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		list, err := rpc.Call[rpc.AllocationList](ctx, nc, events.RPCGPRAllocations, rpc.Empty{})
		if err == nil {
			provisioned = len(list.Allocations)
		}
	}

	// No node is held by two GPRs, in the ledger or on the cluster.
	list, err := rpc.Call[rpc.AllocationList](ctx, nc, events.RPCGPRAllocations, rpc.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Allocations) != 2*nodesPerCluster {
		t.Errorf("%d nodes allocated, want all %d", len(list.Allocations), 2*nodesPerCluster)
	}
	holders := map[string]string{}
	for _, a := range list.Allocations {
		if other, ok := holders[a.GPRID]; ok {
			t.Errorf("GPR %s holds %s and %s (asked for one node)", a.GPRID, other, a.Node)
		}
		holders[a.GPRID] = a.Node
		node, err := c.clients[a.Cluster].CoreV1().Nodes().Get(ctx, a.Node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Labels["egs.io/gpr"]; got != a.GPRID && got != "" {
			t.Errorf("node %s labelled for %s, ledger says %s", a.Node, got, a.GPRID)
		}
	}
	// No GPR was admitted twice.
	admitted := streamEvents(t, js, events.StreamGPR, "egs.gpr.v1.*.*.admitted")
	if n := admitted[events.EventType("gpr", string(events.GPRAdmitted))]; n != len(list.Allocations) {
		t.Errorf("%d admitted events for %d allocations", n, len(list.Allocations))
	}
}
