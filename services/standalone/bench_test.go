package standalone_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"

	"github.com/open-egs/egs/services/provisioner/sim"
)

// setCordon marks every node of every cluster (un)schedulable through the
// Kubernetes API, as an operator's kubectl cordon/uncordon would. The fake
// clientset's watch channel holds 100 events and panics when full, so writes
// are paced: 1 ms after every 25 (about 20 ms for 500 nodes).
func setCordon(tb testing.TB, clients map[string]kubernetes.Interface, cordon bool) {
	tb.Helper()
	ctx := context.Background()
	writes := 0
	for _, kc := range clients {
		nodes, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		for i := range nodes.Items {
			n := &nodes.Items[i]
			n.Spec.Unschedulable = cordon
			if _, err := kc.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
				tb.Fatal(err)
			}
			if writes++; writes%25 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// BenchmarkAdmission measures GPR admissions per second through the bus: Q
// GPRs (one per workspace, each one node of 8 GPUs) wait on a simulated
// cluster of N cordoned nodes; the timer runs from the uncordon of every
// node until N GPRs are provisioned, i.e. through the provisioner's
// informers, the inventory bucket, the scheduler's passes, the ledger, the
// apply commands, the node patches and the provisioned reports.
func BenchmarkAdmission(b *testing.B) {
	sizes := []struct{ gprs, nodes, workspaces int }{{1000, 500, 1000}, {10000, 2000, 10000}, {100000, 2000, 2000}}
	for _, size := range sizes {
		b.Run(fmt.Sprintf("queued=%d/nodes=%d", size.gprs, size.nodes), func(b *testing.B) {
			benchAdmission(b, size.gprs, size.nodes, size.workspaces)
		})
	}
}

// benchAdmission files gprs GPRs round-robin over workspaces (a workspace
// holds one GPR at a time, so at most min(nodes, workspaces) are admitted).
func benchAdmission(b *testing.B, gprs, nodes, workspaces int) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		srv := natstest.RunServer(b)
		nc, _ := natstest.Connect(b, srv)
		c := cluster{clients: sim.Clientsets(sim.Generate(2, nodes/2))}
		setCordon(b, c.clients, true)
		launch(b, srv.ClientURL(), "", runProvisioner(c))
		launch(b, srv.ClientURL(), "", runWorkspace)
		launch(b, srv.ClientURL(), "", runScheduler)
		ctx := context.Background()
		parallel(b, workspaces, func(i int) error {
			_, err := rpc.Call[rpc.Workspace](ctx, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
				Name: fmt.Sprintf("ws-%05d", i), Clusters: []string{"worker-1", "worker-2"}, Username: "u", Email: "u@example.com"})
			return err
		})
		parallel(b, gprs, func(i int) error {
			_, err := rpc.Call[rpc.CreateGPRReply](ctx, nc, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: admin, Spec: rpc.GPRSpec{
				Name: "g", Workspace: fmt.Sprintf("ws-%05d", i%workspaces), AutoCluster: true, AutoGPU: true, GPUsPerNode: 8,
				Nodes: 1, ExitDuration: "1h", Priority: 1 + i%300}})
			return err
		})
		want := int64(min(nodes, workspaces))
		var provisioned atomic.Int64
		done := make(chan struct{})
		sub, err := nc.Subscribe("egs.gpr.v1.*.*."+string(events.GPRProvisioned), func(*nats.Msg) {
			if provisioned.Add(1) == want {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
		stopProfile := profileTimed(b)
		b.StartTimer()
		t0 := time.Now()
		setCordon(b, c.clients, false)
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d GPRs provisioned", provisioned.Load(), want)
		}
		total += time.Since(t0)
		b.StopTimer()
		stopProfile()
		_ = sub.Unsubscribe()
	}
	b.ReportMetric(float64(min(nodes, workspaces)*b.N)/total.Seconds(), "admissions/s")
	b.ReportMetric(0, "ns/op")
}

var timedProfile = flag.String("bench.timedprofile", "", "write a CPU profile of the timed phase of BenchmarkAdmission (the last iteration) to this file")

// profileTimed starts a CPU profile of the timed phase when
// -bench.timedprofile is set (go test's -cpuprofile covers the filing too,
// which dominates it) and returns what stops it.
func profileTimed(b *testing.B) func() {
	if *timedProfile == "" {
		return func() {}
	}
	f, err := os.Create(*timedProfile)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// parallel runs fn(0..n-1) on 8 goroutines and fails b on the first error.
func parallel(b *testing.B, n int, fn func(int) error) {
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// BenchmarkGPRRoundTrip measures one GPR's whole life through the REST API of
// the standalone product: POST /api/v1/gpr, the provisioned event, PUT
// earlyRelease, the completed event. It reports the mean time from the POST
// to the provisioned event (create-to-provisioned-ms).
func BenchmarkGPRRoundTrip(b *testing.B) {
	p := start(b, b.TempDir())
	p.login()
	p.must("POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "bench", "clusters": []string{"worker-1"},
		"namespaces": []string{"bench"}, "username": "bench", "email": "bench@example.com"}, nil)
	nc, err := nats.Connect(p.info.NATSURL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	type key struct{ id, ev string }
	var mu sync.Mutex
	waiters := map[key]chan struct{}{}
	wait := func(id, ev string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		k := key{id, ev}
		if waiters[k] == nil {
			waiters[k] = make(chan struct{})
		}
		return waiters[k]
	}
	if _, err := nc.Subscribe("egs.gpr.v1.bench.>", func(m *nats.Msg) {
		toks := strings.Split(m.Subject, ".")
		close(wait(toks[4], toks[5]))
	}); err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	within := func(ch chan struct{}) {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			b.Fatal("event not seen within 10s")
		}
	}
	var toProvisioned time.Duration
	for b.Loop() {
		t0 := time.Now()
		var g struct{ GPRID string }
		p.must("POST", "/api/v1/gpr", gprBody("bench", "g"), &g)
		within(wait(g.GPRID, "provisioned"))
		toProvisioned += time.Since(t0)
		p.must("PUT", "/api/v1/gpr", map[string]any{"gprId": g.GPRID, "earlyRelease": true}, nil)
		within(wait(g.GPRID, "completed"))
	}
	b.ReportMetric(float64(toProvisioned.Microseconds())/1000/float64(b.N), "create-to-provisioned-ms")
}
