package service_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/provisioner/service"
	"github.com/open-egs/egs/services/provisioner/sim"
)

type harness struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	kcs map[string]kubernetesNodes
	pub *bus.Publisher
	cmd int
}

type kubernetesNodes interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Node, error)
}

func (h *harness) send(t *testing.T, verb string, c events.ProvisionCommand) {
	t.Helper()
	subject, err := events.ProvisionerCommandSubject(verb)
	if err != nil {
		t.Fatal(err)
	}
	h.cmd++
	ev, err := bus.NewEvent("cmd-"+strconv.Itoa(h.cmd), "egs/test", events.EventType("provisioner", verb), c.GPRID, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.pub.Publish(context.Background(), subject, ev); err != nil {
		t.Fatal(err)
	}
}

// drained waits until the provisioner has acknowledged every command sent.
func (h *harness) drained(t *testing.T) {
	t.Helper()
	eventually(t, "commands handled", func() bool {
		c, err := h.js.Consumer(context.Background(), events.StreamCommands, events.DurableProvisionerCommands)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && int(info.AckFloor.Consumer) >= h.cmd
	})
}

func (h *harness) results(t *testing.T, ws, gpr, outcome string) []events.ProvisionResult {
	t.Helper()
	subject, err := events.ProvisionSubject(ws, gpr, outcome)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.js.Stream(context.Background(), events.StreamProvision)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.ProvisionResult
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			return out
		}
		ev, err := bus.ParseEvent(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		var r events.ProvisionResult
		if err := ev.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if want := gpr + "." + outcome + "." + strconv.Itoa(r.Seq); ev.ID != want {
			t.Errorf("event id = %q, want %q", ev.ID, want)
		}
		out = append(out, r)
	}
}

func (h *harness) node(t *testing.T, cluster, name string) *corev1.Node {
	t.Helper()
	n, err := h.kcs[cluster].Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func workspaceTaints(n *corev1.Node) int {
	c := 0
	for _, t := range n.Spec.Taints {
		if t.Key == "egs.io/workspace" {
			c++
		}
	}
	return c
}

func TestProvisioner(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	clusters := sim.Clientsets(sim.Default())
	var armed atomic.Bool    // the next apply crashes after patching its nodes
	var crashes atomic.Int32 // after-apply points reached while the test watches
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var cfg service.Config
	cfg.HandlerTimeout, cfg.RPCTimeout, cfg.InventoryWorkers = 5*time.Second, 5*time.Second, 2
	go func() {
		done <- service.Run(ctx, service.Deps{
			Config: cfg, NATS: nc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:    func() { close(ready) },
			Clusters: clusters,
			CrashPoint: func(point string) {
				if point != service.CrashAfterApply {
					return
				}
				crashes.Add(1)
				if armed.CompareAndSwap(true, false) {
					panic("simulated crash")
				}
			},
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready")
	}
	h := &harness{nc: nc, js: js, pub: bus.NewPublisher(js), kcs: map[string]kubernetesNodes{}}
	for name, kc := range clusters {
		h.kcs[name] = kc.CoreV1().Nodes()
	}

	t.Run("registers clusters and inventory before ready", func(t *testing.T) {
		kv, err := js.KeyValue(ctx, events.BucketInventory)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.Keys(ctx)
		if err != nil || len(keys) != 6 {
			t.Errorf("inventory keys = %v (%v), want 6", keys, err)
		}
		ckv, err := js.KeyValue(ctx, events.BucketClusters)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ckv.Get(ctx, "worker-2")
		if err != nil {
			t.Fatal(err)
		}
		var c events.Cluster
		if err := json.Unmarshal(e.Value(), &c); err != nil || !c.Simulated {
			t.Errorf("cluster worker-2 = %+v (%v), want simulated", c, err)
		}
	})

	t.Run("inventory rpc", func(t *testing.T) {
		tests := map[string]struct {
			clusters []string
			want     []string
		}{
			"all":      {want: []string{"worker-1/w1-a100-0", "worker-1/w1-h100-0", "worker-1/w1-h100-1", "worker-2/w2-a100-0", "worker-2/w2-a100-1", "worker-2/w2-h100-0"}},
			"worker-2": {clusters: []string{"worker-2"}, want: []string{"worker-2/w2-a100-0", "worker-2/w2-a100-1", "worker-2/w2-h100-0"}},
			"unknown":  {clusters: []string{"nope"}, want: nil},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				inv, err := rpc.Call[rpc.Inventory](ctx, nc, events.RPCInventoryList, rpc.InventoryRequest{Clusters: tc.clusters})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, n := range inv.Nodes {
					got = append(got, n.Cluster+"/"+n.Name)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("inventory (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("kubeconfig rpc", func(t *testing.T) {
		tests := map[string]struct {
			req  rpc.KubeConfigRequest
			want rpc.Code
		}{
			"unknown workspace": {req: rpc.KubeConfigRequest{Workspace: "team-z", Cluster: "worker-1"}, want: rpc.NotFound},
			"unknown cluster":   {req: rpc.KubeConfigRequest{Workspace: "team-a", Cluster: "worker-9"}, want: rpc.NotFound},
			"bad workspace":     {req: rpc.KubeConfigRequest{Workspace: "Team A", Cluster: "worker-1"}, want: rpc.BadRequest},
			"other workspace": {req: rpc.KubeConfigRequest{Caller: rpc.Caller{Role: "Editor", Workspace: "team-b"},
				Workspace: "team-a", Cluster: "worker-1"}, want: rpc.Forbidden},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				_, err := rpc.Call[rpc.KubeConfig](ctx, nc, events.RPCKubeConfig, tc.req)
				if got := rpc.CodeOf(err); got != tc.want {
					t.Errorf("code = %s (%v), want %s", got, err, tc.want)
				}
			})
		}
		t.Run("simulated cluster: a kubeconfig on the first namespace", func(t *testing.T) {
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(rpc.Workspace{Name: "team-a", Clusters: []string{"worker-1"}, Namespaces: []string{"team-a-ml", "team-a-dev"}})
			if _, err := kv.Put(ctx, "team-a", b); err != nil {
				t.Fatal(err)
			}
			kc, err := rpc.Call[rpc.KubeConfig](ctx, nc, events.RPCKubeConfig, rpc.KubeConfigRequest{Workspace: "team-a", Cluster: "worker-1"})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"current-context: team-a@worker-1", "namespace: team-a-ml", "token: simulated-team-a"} {
				if !strings.Contains(kc.KubeConfig, want) {
					t.Errorf("kubeconfig lacks %q:\n%s", want, kc.KubeConfig)
				}
			}
			_, err = rpc.Call[rpc.KubeConfig](ctx, nc, events.RPCKubeConfig, rpc.KubeConfigRequest{Workspace: "team-a", Cluster: "worker-2"})
			if got := rpc.CodeOf(err); got != rpc.NotFound {
				t.Errorf("cluster outside the workspace: code = %s (%v), want NOT_FOUND", got, err)
			}
		})
	})

	apply := events.ProvisionCommand{GPRID: "gpr-1", Workspace: "team-a", Cluster: "worker-1", Nodes: []string{"w1-h100-0", "w1-h100-1"}, Seq: 3}

	t.Run("apply twice: labels and taint once, one applied event", func(t *testing.T) {
		h.send(t, events.CommandApply, apply)
		h.send(t, events.CommandApply, apply)
		h.drained(t)
		if got := h.results(t, "team-a", "gpr-1", events.ProvisionApplied); len(got) != 1 || got[0].Seq != 3 {
			t.Errorf("applied events = %+v, want one with seq 3", got)
		}
		for _, name := range apply.Nodes {
			n := h.node(t, "worker-1", name)
			if n.Labels["egs.io/workspace"] != "team-a" || n.Labels["egs.io/gpr"] != "gpr-1" || workspaceTaints(n) != 1 {
				t.Errorf("node %s: labels %v taints %v", name, n.Labels, n.Spec.Taints)
			}
		}
		eventually(t, "inventory shows the hand-over", func() bool {
			inv, err := rpc.Call[rpc.Inventory](ctx, nc, events.RPCInventoryList, rpc.InventoryRequest{Clusters: []string{"worker-1"}})
			if err != nil {
				return false
			}
			held := 0
			for _, n := range inv.Nodes {
				if n.GPRID == "gpr-1" && n.Workspace == "team-a" {
					held++
				}
			}
			return held == 2
		})
	})

	t.Run("conflict: node held by another gpr fails", func(t *testing.T) {
		h.send(t, events.CommandApply, events.ProvisionCommand{GPRID: "gpr-2", Workspace: "team-b", Cluster: "worker-1", Nodes: []string{"w1-a100-0", "w1-h100-0"}, Seq: 1})
		h.send(t, events.CommandApply, events.ProvisionCommand{GPRID: "gpr-3", Workspace: "team-b", Cluster: "worker-1", Nodes: []string{"no-such-node"}, Seq: 1})
		h.drained(t)
		failed := h.results(t, "team-b", "gpr-2", events.ProvisionFailed)
		if len(failed) != 1 || failed[0].Error == "" {
			t.Fatalf("failed events = %+v, want one with a reason", failed)
		}
		t.Logf("reason: %s", failed[0].Error)
		if n := h.node(t, "worker-1", "w1-a100-0"); n.Labels["egs.io/gpr"] != "" {
			t.Errorf("refused apply labelled the free node: %v", n.Labels)
		}
		if got := h.results(t, "team-b", "gpr-3", events.ProvisionFailed); len(got) != 1 {
			t.Errorf("failed events for a missing node = %+v, want one", got)
		}
	})

	t.Run("crash after apply: redelivery publishes applied once", func(t *testing.T) {
		crashes.Store(0)
		armed.Store(true)
		h.send(t, events.CommandApply, events.ProvisionCommand{GPRID: "gpr-crash", Workspace: "team-c", Cluster: "worker-2", Nodes: []string{"w2-h100-0"}, Seq: 2})
		h.drained(t)
		if got := h.results(t, "team-c", "gpr-crash", events.ProvisionApplied); len(got) != 1 {
			t.Errorf("applied events = %+v, want one", got)
		}
		if crashes.Load() != 2 {
			t.Errorf("crash point reached %d times, want 2 (crash, then redelivery)", crashes.Load())
		}
		if n := h.node(t, "worker-2", "w2-h100-0"); workspaceTaints(n) != 1 || n.Labels["egs.io/gpr"] != "gpr-crash" {
			t.Errorf("node after redelivery: labels %v taints %v", n.Labels, n.Spec.Taints)
		}
	})

	t.Run("remove, then a stale apply is ignored", func(t *testing.T) {
		remove := apply
		remove.Seq = 5
		h.send(t, events.CommandRemove, remove)
		h.send(t, events.CommandRemove, remove)
		h.send(t, events.CommandApply, apply) // seq 3, redelivered late
		h.drained(t)
		if got := h.results(t, "team-a", "gpr-1", events.ProvisionRemoved); len(got) != 1 || got[0].Seq != 5 {
			t.Errorf("removed events = %+v, want one with seq 5", got)
		}
		if got := h.results(t, "team-a", "gpr-1", events.ProvisionApplied); len(got) != 1 {
			t.Errorf("applied events = %d, want still 1", len(got))
		}
		for _, name := range apply.Nodes {
			n := h.node(t, "worker-1", name)
			if n.Labels["egs.io/gpr"] != "" || n.Labels["egs.io/workspace"] != "" || workspaceTaints(n) != 0 {
				t.Errorf("node %s still handed over: labels %v taints %v", name, n.Labels, n.Spec.Taints)
			}
		}
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil on shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	if _, err := rpc.Call[rpc.Inventory](context.Background(), nc, events.RPCInventoryList, rpc.InventoryRequest{}); rpc.CodeOf(err) != rpc.Unavailable {
		t.Errorf("rpc after shutdown = %v, want UNAVAILABLE", err)
	}
}
