package svcmain

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/open-egs/egs/libs/testkit/natstest"
)

// testSpec has one flag of its own, -n, which must be positive.
func testSpec(ran *int) Spec {
	var n int
	return Spec{
		Name: "probe", EnvPrefix: "EGS_PROBE",
		Register: func(fs *flag.FlagSet) func() error {
			fs.IntVar(&n, "n", 1, "a positive number")
			return func() error {
				if n <= 0 {
					return errors.New("n must be positive")
				}
				return nil
			}
		},
		Run: func(ctx context.Context, env Env) error {
			*ran = n
			if env.NATS == nil || env.Log == nil {
				return errors.New("no connection or logger")
			}
			<-ctx.Done()
			return nil
		},
	}
}

func TestRun(t *testing.T) {
	srv := natstest.RunServer(t)
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string
		wantRan int
	}{
		"help":           {args: []string{"-h"}},
		"unknown flag":   {args: []string{"-nope"}, wantErr: "flag provided but not defined"},
		"validated flag": {args: []string{"-n", "0", "-nats.url", srv.ClientURL()}, wantErr: "n must be positive"},
		"validated env":  {env: map[string]string{"EGS_PROBE_N": "-3", "EGS_PROBE_NATS_URL": srv.ClientURL()}, wantErr: "n must be positive"},
		"bad env":        {env: map[string]string{"EGS_PROBE_N": "many"}, wantErr: "EGS_PROBE_N"},
		"runs":           {args: []string{"-n", "7"}, env: map[string]string{"EGS_PROBE_NATS_URL": srv.ClientURL()}, wantRan: 7},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // run, then stop at once
			ran := 0
			err := Run(ctx, testSpec(&ran), tc.args, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Run = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Run = %v, want an error containing %q", err, tc.wantErr)
			}
			if ran != tc.wantRan {
				t.Errorf("the service ran with n=%d, want %d", ran, tc.wantRan)
			}
		})
	}
}
