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

// TestRun runs the binary's run with its configuration from the environment
// (EGS_AUTH_*), exchanges the configured bootstrap key, and stops it.
func TestRun(t *testing.T) {
	srv, nc, _ := natstest.RunJetStream(t)
	const secret = "8a3c1f0e-2b4d-4e6f-8a1b-3c5d7e9f0a2b"
	env := map[string]string{
		"EGS_AUTH_NATS_URL":          srv.ClientURL(),
		"EGS_AUTH_BOOTSTRAP_API_KEY": secret,
		"EGS_AUTH_DATA_DIR":          t.TempDir(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := rpc.Call[rpc.ExchangeReply](context.Background(), nc, events.RPCAuthExchange,
			rpc.ExchangeRequest{APIKey: secret})
		if err == nil {
			break
		}
		var e *rpc.Error
		if !errors.As(err, &e) || e.Code != rpc.Unavailable || time.Now().After(deadline) {
			t.Fatalf("exchange: %v", err)
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
	err := run(context.Background(), []string{"-bootstrap.api-key", "short"}, func(string) string { return "" },
		io.Discard, io.Discard)
	if err == nil {
		t.Error("run accepted a 5-character bootstrap key")
	}
}
