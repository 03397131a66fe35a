package standalone_test

import (
	"context"
	"fmt"
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

// BenchmarkAdmission measures GPR admissions per second through the bus: 1,000
// GPRs (one per workspace, each one node of 8 GPUs) wait on a simulated
// cluster of 500 cordoned nodes; the timer runs from the uncordon of every
// node until 500 GPRs are provisioned, i.e. through the provisioner's
// informers, the inventory bucket, the scheduler's pass, the ledger, the
// apply command, the node patches and the provisioned report.
func BenchmarkAdmission(b *testing.B) {
	const nodes, gprs = 500, 1000
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
		for i := range gprs {
			ws := fmt.Sprintf("ws-%04d", i)
			if _, err := rpc.Call[rpc.Workspace](ctx, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
				Name: ws, Clusters: []string{"worker-1", "worker-2"}, Username: "u", Email: "u@example.com"}); err != nil {
				b.Fatal(err)
			}
			if _, err := rpc.Call[rpc.CreateGPRReply](ctx, nc, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: admin, Spec: rpc.GPRSpec{
				Name: "g", Workspace: ws, AutoCluster: true, AutoGPU: true, GPUsPerNode: 8, Nodes: 1,
				ExitDuration: "1h", Priority: 1 + i%300}}); err != nil {
				b.Fatal(err)
			}
		}
		var provisioned atomic.Int64
		done := make(chan struct{})
		sub, err := nc.Subscribe("egs.gpr.v1.*.*."+string(events.GPRProvisioned), func(*nats.Msg) {
			if provisioned.Add(1) == nodes {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		setCordon(b, c.clients, false)
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d GPRs provisioned", provisioned.Load(), nodes)
		}
		total += time.Since(t0)
		b.StopTimer()
		_ = sub.Unsubscribe()
	}
	b.ReportMetric(float64(nodes*b.N)/total.Seconds(), "admissions/s")
	b.ReportMetric(0, "ns/op")
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
