package k8sinventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/provisioner/internal/inventory"
	"github.com/open-egs/egs/services/provisioner/internal/k8sinventory"
	"github.com/open-egs/egs/services/provisioner/sim"
)

var g8 = sim.NodeGroup{NamePrefix: "gpu", InstanceType: "p5.48xlarge", GPUProduct: "NVIDIA-H100-80GB-HBM3",
	GPUMemoryMiB: 81559, GPUs: 8, Region: "us-east-1", CloudProvider: "aws"}

type env struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

func setup(t *testing.T) env {
	t.Helper()
	_, _, js := natstest.RunJetStream(t)
	ctx := testCtx(t)
	stream, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{
		Name: events.StreamInventory, Subjects: []string{events.SubjectInventoryAll},
		Storage: jetstream.FileStorage, MaxMsgsPerSubject: 16,
		// A tiny de-duplication window, so the tests see every repeat
		// the syncer publishes instead of the stream hiding it.
		Duplicates: 100 * time.Millisecond, // the server's minimum
	}))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketInventory, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	return env{js: js, kv: kv, stream: stream}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start runs a Syncer until the test ends; synced is called from its Run.
func start(t *testing.T, e env, clusters map[string]kubernetes.Interface, synced func()) *k8sinventory.Syncer {
	t.Helper()
	s, err := k8sinventory.New(k8sinventory.Config{
		Clusters: clusters, KV: e.kv, Stream: e.stream, Pub: bus.NewPublisher(e.js),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- s.Run(ctx, func() {
			if synced != nil {
				synced()
			}
			close(ready)
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run ended before sync: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("inventory did not sync")
	}
	return s
}

func keys(t *testing.T, kv jetstream.KeyValue) []string {
	t.Helper()
	ks, err := kv.Keys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	slices.Sort(ks)
	return ks
}

func entry(t *testing.T, kv jetstream.KeyValue, key string) (events.Node, uint64, bool) {
	t.Helper()
	e, err := kv.Get(context.Background(), key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.Node{}, 0, false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	var n events.Node
	if err := json.Unmarshal(e.Value(), &n); err != nil {
		t.Fatal(err)
	}
	return n, e.Revision(), true
}

// count is the number of events stored on subject.
func count(t *testing.T, s jetstream.Stream, subject string) uint64 {
	t.Helper()
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Subjects[subject]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func subject(t *testing.T, cluster, node, ev string) string {
	s, err := events.InventorySubject(cluster, node, ev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSyncerReadyOnlyAfterKVReflectsClusters(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	// A node that vanished while the service was down.
	stale, _ := json.Marshal(events.Node{Cluster: "c1", Name: "gone"})
	if _, err := e.kv.Put(ctx, events.NodeKey("c1", "gone"), stale); err != nil {
		t.Fatal(err)
	}
	// A cluster that is no longer served.
	old, _ := json.Marshal(events.Node{Cluster: "old", Name: "n"})
	if _, err := e.kv.Put(ctx, events.NodeKey("old", "n"), old); err != nil {
		t.Fatal(err)
	}
	plain := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cpu-only"}}
	clusters := map[string]kubernetes.Interface{
		"c1": fake.NewClientset(sim.Node("c1", g8, 0), sim.Node("c1", g8, 1), plain),
		"c2": fake.NewClientset(sim.Node("c2", g8, 0)),
	}
	want := []string{"c1.gpu-0", "c1.gpu-1", "c2.gpu-0"}
	var atReady []string
	s := start(t, e, clusters, func() { atReady = keys(t, e.kv) })
	if diff := cmp.Diff(want, atReady); diff != "" {
		t.Errorf("KV keys when synced (-want +got):\n%s", diff)
	}
	for _, sub := range []string{subject(t, "c1", "gpu-0", events.NodeUpdated), subject(t, "c2", "gpu-0", events.NodeUpdated),
		subject(t, "c1", "gone", events.NodeDeleted), subject(t, "old", "n", events.NodeDeleted)} {
		if got := count(t, e.stream, sub); got != 1 {
			t.Errorf("events on %s = %d, want 1", sub, got)
		}
	}
	var names []string
	for _, n := range s.List([]string{"c1"}) {
		names = append(names, n.Cluster+"/"+n.Name)
	}
	if diff := cmp.Diff([]string{"c1/gpu-0", "c1/gpu-1"}, names); diff != "" {
		t.Errorf("List(c1) (-want +got):\n%s", diff)
	}
}

func TestSyncerFollowsNodes(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	kc := fake.NewClientset(sim.Node("c1", g8, 0))
	start(t, e, map[string]kubernetes.Interface{"c1": kc}, nil)
	nodes := kc.CoreV1().Nodes()
	upd := subject(t, "c1", "gpu-1", events.NodeUpdated)

	// add
	if _, err := nodes.Create(ctx, sim.Node("c1", g8, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "added node in KV", func() bool { _, _, ok := entry(t, e.kv, "c1.gpu-1"); return ok })
	eventually(t, "added event", func() bool { return count(t, e.stream, upd) == 1 })
	_, rev, _ := entry(t, e.kv, "c1.gpu-1")

	// a heartbeat: the informer sees an update, the inventory does not change
	n, err := nodes.Get(ctx, "gpu-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Now())
	if _, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// then a real change (cordon); once it shows, the heartbeat has been handled
	n, _ = nodes.Get(ctx, "gpu-1", metav1.GetOptions{})
	n.Spec.Unschedulable = true
	if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cordon in KV", func() bool { got, _, _ := entry(t, e.kv, "c1.gpu-1"); return got.Unschedulable })
	eventually(t, "cordon event", func() bool { return count(t, e.stream, upd) == 2 })
	if _, rev2, _ := entry(t, e.kv, "c1.gpu-1"); rev2 != rev+1 {
		t.Errorf("revision after heartbeat and cordon = %d, want %d (one write)", rev2, rev+1)
	}

	// delete
	if err := nodes.Delete(ctx, "gpu-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted node gone from KV", func() bool { _, _, ok := entry(t, e.kv, "c1.gpu-1"); return !ok })
	del := subject(t, "c1", "gpu-1", events.NodeDeleted)
	eventually(t, "deleted event", func() bool { return count(t, e.stream, del) == 1 })
	msg, err := e.stream.GetLastMsgForSubject(ctx, del)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(bus.HeaderType); got != events.EventType("inventory", events.NodeDeleted) {
		t.Errorf("deleted event type = %q", got)
	}
	if diff := cmp.Diff([]string{"c1.gpu-0"}, keys(t, e.kv)); diff != "" {
		t.Errorf("KV keys (-want +got):\n%s", diff)
	}
}

func TestSyncerRestartRepublishesOnlyWhatWasLost(t *testing.T) {
	e := setup(t)
	ctx := testCtx(t)
	gpu1 := sim.Node("c1", g8, 1)
	kc := fake.NewClientset(sim.Node("c1", g8, 0), gpu1)
	clusters := map[string]kubernetes.Interface{"c1": kc}

	// A crash between the KV write of gpu-1 and its event: the entry is
	// current, the event was never published.
	n, _ := inventory.FromNode("c1", gpu1, time.Now())
	b, _ := json.Marshal(n)
	if _, err := e.kv.Put(ctx, "c1.gpu-1", b); err != nil {
		t.Fatal(err)
	}
	subs := []string{subject(t, "c1", "gpu-0", events.NodeUpdated), subject(t, "c1", "gpu-1", events.NodeUpdated)}
	for round := range 2 { // the second start finds everything announced
		if round > 0 {
			// Outlive the de-duplication window: only the syncer's own check
			// may keep it from announcing again. Nothing to wait on but time.
			time.Sleep(150 * time.Millisecond)
		}
		s, err := k8sinventory.New(k8sinventory.Config{Clusters: clusters, KV: e.kv, Stream: e.stream,
			Pub: bus.NewPublisher(e.js), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		if err := s.Run(rctx, cancel); err != nil { // sync once, then stop
			t.Fatal(err)
		}
		for _, sub := range subs {
			if got := count(t, e.stream, sub); got != 1 {
				t.Errorf("start %d: events on %s = %d, want 1", round+1, sub, got)
			}
		}
	}
	if _, rev, _ := entry(t, e.kv, "c1.gpu-1"); rev != 1 {
		t.Errorf("gpu-1 revision = %d, want 1 (never rewritten)", rev)
	}
}
