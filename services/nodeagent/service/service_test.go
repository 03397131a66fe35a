package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/nodeagent/service"
)

// telemetryStream plays the telemetry service: it declares the stream.
func telemetryStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: events.StreamTelemetry,
		Subjects: []string{events.SubjectTelemetryAll}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nextBatch waits for the next batch on subject filter and decodes it.
func nextBatches(t *testing.T, s jetstream.Stream, filter string, n int) []events.GPUSampleBatch {
	t.Helper()
	c, err := s.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.GPUSampleBatch
	for len(out) < n {
		m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("batch %d: %v", len(out)+1, err)
		}
		ev, err := bus.ParseEvent(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		var b events.GPUSampleBatch
		if err := ev.Decode(&b); err != nil {
			t.Fatal(err)
		}
		if want := events.EventType("telemetry", "gpu"); ev.Type != want || m.Headers().Get("Nats-Msg-Id") != ev.ID {
			t.Errorf("event type %q id header %q, want %q and %q", ev.Type, m.Headers().Get("Nats-Msg-Id"), want, ev.ID)
		}
		out = append(out, b)
	}
	return out
}

func runUntilCancel(t *testing.T, run func(ctx context.Context, ready func()) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func TestSimulatedAgent(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	s := telemetryStream(t, js)
	cfg := service.Config{Cluster: "worker-1", Node: "gpu-node.example.com", Interval: 50 * time.Millisecond, Buffer: 10,
		MaxInflight: 4, FlushTimeout: time.Second, Simulate: true, SimProduct: "NVIDIA-A100-SXM4-40GB", SimGPUs: 4, SimMemoryMiB: 40960}
	runUntilCancel(t, func(ctx context.Context, ready func()) error {
		return service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Ready: ready})
	})
	subj, _ := events.TelemetryGPUSubject("worker-1", "gpu-node.example.com")
	got := nextBatches(t, s, subj, 3)
	for i, b := range got {
		if b.Cluster != "worker-1" || b.Node != "gpu-node.example.com" || b.Seq != uint64(i+1) || len(b.GPUs) != 4 {
			t.Errorf("batch %d = %s/%s seq %d with %d GPUs", i, b.Cluster, b.Node, b.Seq, len(b.GPUs))
		}
		if !b.GPUs[0].Idle() {
			t.Errorf("batch %d: an unprovisioned simulated GPU is busy", i)
		}
	}
}

func TestNoNVML(t *testing.T) {
	_, nc, _ := natstest.RunJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := service.Run(ctx, service.Deps{NATS: nc, Config: service.Config{Cluster: "c", Node: "n", Interval: time.Second,
		Buffer: 1, MaxInflight: 1, ProcRoot: "/proc"}})
	if err != nil && !errors.Is(err, service.ErrNoNVML) {
		t.Fatalf("Run without NVML = %v, want ErrNoNVML", err)
	}
	if err == nil {
		t.Log("NVML is installed here: the agent ran against the real driver")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		cfg service.Config
		ok  bool
	}{
		"good":          {service.Config{Cluster: "c1", Node: "N.1", Interval: time.Second, Buffer: 1, MaxInflight: 1}, true},
		"bad cluster":   {service.Config{Cluster: "C.1", Node: "n", Interval: time.Second, Buffer: 1, MaxInflight: 1}, false},
		"no node":       {service.Config{Cluster: "c1", Interval: time.Second, Buffer: 1, MaxInflight: 1}, false},
		"tiny period":   {service.Config{Cluster: "c1", Node: "n", Interval: time.Millisecond, Buffer: 1, MaxInflight: 1}, false},
		"sim no gpus":   {service.Config{Cluster: "c1", Node: "n", Interval: time.Second, Buffer: 1, MaxInflight: 1, Simulate: true}, false},
		"zero buffer":   {service.Config{Cluster: "c1", Node: "n", Interval: time.Second, MaxInflight: 1}, false},
		"zero inflight": {service.Config{Cluster: "c1", Node: "n", Interval: time.Second, Buffer: 1}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestFleet(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	s := telemetryStream(t, js)
	ledger, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: events.BucketLedger})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []service.SimNode{
		{Cluster: "worker-1", Node: "w1-a", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8},
		{Cluster: "worker-1", Node: "w1-b", Product: "NVIDIA-A100-SXM4-40GB", MemoryMiB: 40960, GPUs: 8},
	}
	cfg := service.NewFleetConfig()
	cfg.Interval = 50 * time.Millisecond
	runUntilCancel(t, func(ctx context.Context, ready func()) error {
		return service.RunFleet(ctx, service.FleetDeps{Config: cfg, Nodes: nodes, NATS: nc, Ready: ready})
	})
	subjB, _ := events.TelemetryGPUSubject("worker-1", "w1-b")
	subjA, _ := events.TelemetryGPUSubject("worker-1", "w1-a")

	// The ledger hands w1-a to a GPR: its GPUs start working.
	b, _ := json.Marshal(rpc.Allocation{Cluster: "worker-1", Node: "w1-a", GPRID: "gpr-1", Workspace: "ws", GPUs: 8})
	if _, err := ledger.Put(context.Background(), events.NodeKey("worker-1", "w1-a"), b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, subjA, func(b events.GPUSampleBatch) bool { return !b.GPUs[0].Idle() })

	hundred := 100
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := rpc.Call[events.SimLoadReply](ctx, nc, events.RPCNodeAgentSimLoad, events.SimLoadRequest{Node: "w1-b", Utilization: &hundred})
	if err != nil || rep.GPUs != 8 || rep.Cluster != "worker-1" {
		t.Fatalf("sim-load = %+v, %v", rep, err)
	}
	waitFor(t, s, subjB, func(b events.GPUSampleBatch) bool { return *b.GPUs[7].GPUUtil == 100 && len(b.GPUs[7].Processes) == 1 })

	// Handing w1-b back ends the fixed load; the next GPR finds it following the model.
	zero := 0
	if _, err := rpc.Call[events.SimLoadReply](ctx, nc, events.RPCNodeAgentSimLoad, events.SimLoadRequest{Node: "w1-a", Utilization: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, subjA, func(b events.GPUSampleBatch) bool { return b.GPUs[0].Idle() })
	if err := ledger.Delete(context.Background(), events.NodeKey("worker-1", "w1-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Put(context.Background(), events.NodeKey("worker-1", "w1-a"), b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, subjA, func(b events.GPUSampleBatch) bool { return !b.GPUs[0].Idle() })

	tests := map[string]struct {
		req  events.SimLoadRequest
		code rpc.Code
	}{
		"unknown node": {events.SimLoadRequest{Node: "nope", Utilization: &hundred}, rpc.NotFound},
		"too hot":      {events.SimLoadRequest{Node: "w1-a", Utilization: func() *int { v := 101; return &v }()}, rpc.Invalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := rpc.Call[events.SimLoadReply](ctx, nc, events.RPCNodeAgentSimLoad, tc.req)
			if rpc.CodeOf(err) != tc.code {
				t.Errorf("sim-load = %v, want %s", err, tc.code)
			}
		})
	}
}

// waitFor reads the batches of subject until one satisfies ok.
func waitFor(t *testing.T, s jetstream.Stream, subject string, ok func(events.GPUSampleBatch) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msg, err := s.GetLastMsgForSubject(context.Background(), subject)
		if err == nil {
			ev, err := bus.ParseEvent(msg.Data)
			if err != nil {
				t.Fatal(err)
			}
			var b events.GPUSampleBatch
			if err := ev.Decode(&b); err != nil {
				t.Fatal(err)
			}
			if ok(b) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no batch on %s satisfied the condition within 10s", subject)
}
