package service

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"
)

// declareNeighbours declares what the scheduler waits for and other services
// own: the inventory bucket and the provision and workspace streams.
func declareNeighbours(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	if _, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketInventory}); err != nil {
		t.Fatal(err)
	}
	for name, subj := range map[string]string{events.StreamProvision: events.SubjectProvisionAll, events.StreamWorkspace: events.SubjectWorkspaceAll} {
		if _, err := bus.EnsureStream(ctx, js, jetstream.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
			t.Fatal(err)
		}
	}
}

type replica struct {
	cancel context.CancelFunc
	ready  chan struct{}
	done   chan error
}

func startReplica(t *testing.T, nc *nats.Conn, ttl time.Duration) *replica {
	t.Helper()
	cfg := Defaults()
	cfg.LeaseTTL = ttl
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cancel: cancel, ready: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		r.done <- Run(ctx, Deps{Config: cfg, NATS: nc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func() { close(r.ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *replica) isReady() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

func TestOneActiveReplica(t *testing.T) {
	srv, _, js := natstest.RunJetStream(t)
	declareNeighbours(t, js)
	nc1, _ := natstest.Connect(t, srv)
	nc2, _ := natstest.Connect(t, srv)

	first := startReplica(t, nc1, 2*time.Second)
	select {
	case <-first.ready:
	case err := <-first.done:
		t.Fatalf("first replica stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("first replica not active")
	}
	second := startReplica(t, nc2, 2*time.Second)
	time.Sleep(2500 * time.Millisecond) // longer than the lease: the first renews it
	if second.isReady() {
		t.Fatal("two replicas active at once")
	}

	// A clean stop releases the lease: the standby takes over.
	first.cancel()
	if err := <-first.done; err != nil {
		t.Fatalf("first replica stopped with %v", err)
	}
	first.done <- nil
	select {
	case <-second.ready:
	case <-time.After(5 * time.Second):
		t.Fatal("standby did not take over after a clean stop")
	}
}

func TestStandbyTakesOverAfterCrash(t *testing.T) {
	srv, _, js := natstest.RunJetStream(t)
	declareNeighbours(t, js)
	nc1, _ := natstest.Connect(t, srv)
	nc2, _ := natstest.Connect(t, srv)

	first := startReplica(t, nc1, 2*time.Second)
	<-first.ready
	second := startReplica(t, nc2, 2*time.Second)
	nc1.Close() // the active replica dies: no renewal, no release
	select {
	case <-second.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("standby did not take over after the lease expired")
	}
}

func TestConfigValidate(t *testing.T) {
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c.AckWait, c.LeaseTTL = time.Second, time.Millisecond
	if err := c.Validate(); err == nil {
		t.Fatal("ack.wait below handler.timeout and a 1ms lease accepted")
	}
}
