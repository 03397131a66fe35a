package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
)

func TestRunServesScenario(t *testing.T) {
	srv, nc, js := natstest.RunJetStream(t)
	scenario := filepath.Join(t.TempDir(), "s.yaml")
	body := `{"clusters":[{"name":"lab","nodes":[{"namePrefix":"g","count":3,"instanceType":"g5.xlarge","gpuProduct":"NVIDIA-A10G","gpuMemoryMiB":23028,"gpus":1}]}]}`
	if err := os.WriteFile(scenario, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EGS_PROVISIONER_SCENARIO": scenario}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-nats.url", srv.ClientURL()}, func(k string) string { return env[k] }, io.Discard)
	}()

	deadline := time.Now().Add(15 * time.Second)
	for {
		inv, err := rpc.Call[rpc.Inventory](ctx, nc, events.RPCInventoryList, rpc.InventoryRequest{})
		if err == nil && len(inv.Nodes) == 3 {
			if n := inv.Nodes[0]; n.Cluster != "lab" || n.Name != "g-0" || n.GPUMemoryGB != 22 || n.GPUCount != 1 {
				t.Errorf("first node = %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory not served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	kv, err := js.KeyValue(ctx, events.BucketClusters)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "lab"); err != nil {
		t.Errorf("cluster lab not registered: %v", err)
	}
	if _, err := kv.Get(ctx, "worker-1"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("default cluster worker-1 registered (%v), want only the scenario's", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		"timeout":      {args: []string{"-handler.timeout", "0s"}, wantErr: "handler.timeout"},
		"cluster name": {env: map[string]string{"EGS_PROVISIONER_CLUSTER_NAME": "My.Cluster"}, wantErr: "cluster.name"},
		"unknown flag": {args: []string{"-nope"}, wantErr: "nope"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("run = %v, want an error about %s", err, tc.wantErr)
			}
		})
	}
}
