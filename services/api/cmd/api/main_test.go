package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/open-egs/egs/libs/testkit/natstest"
)

func TestRun(t *testing.T) {
	srv := natstest.RunServer(t)
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		"bad flag":    {args: []string{"-nope"}, wantErr: "flag provided but not defined"},
		"bad config":  {args: []string{"-rpc.timeout=0s"}, wantErr: "rpc.timeout must be positive"},
		"bad env":     {env: map[string]string{"EGS_API_RPC_TIMEOUT": "soon"}, wantErr: "EGS_API_RPC_TIMEOUT"},
		"clean serve": {args: []string{"-http.addr=127.0.0.1:0"}, env: map[string]string{"EGS_API_NATS_URL": srv.ClientURL()}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // serve, then shut down at once
			err := run(ctx, tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("run = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
