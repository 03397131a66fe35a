package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
)

// TestRun runs the binary's run with its NATS URL from the environment
// (EGS_WORKSPACE_NATS_URL), lists workspaces, and stops it.
func TestRun(t *testing.T) {
	srv, nc, _ := natstest.RunJetStream(t)
	env := map[string]string{"EGS_WORKSPACE_NATS_URL": srv.ClientURL()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := rpc.Call[rpc.WorkspaceList](context.Background(), nc, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{})
		if err == nil {
			if l.Workspaces == nil {
				t.Error("list of no workspaces is null, want []")
			}
			break
		}
		var e *rpc.Error
		if !errors.As(err, &e) || e.Code != rpc.Unavailable || time.Now().After(deadline) {
			t.Fatalf("list: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run() = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	if err := run(context.Background(), []string{"-rpc.timeout", "0s"}, func(string) string { return "" },
		io.Discard); err == nil {
		t.Error("run accepted a zero rpc.timeout")
	}
}
