package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
)

// TestCommands checks the requests the tool sends and what it prints, against
// a stand-in of the provisioner's methods.
func TestCommands(t *testing.T) {
	srv, nc, _ := natstest.RunJetStream(t)
	var got rpc.ClusterRegisterRequest
	svc, err := rpc.Serve(nc, "provisioner", "0.0.0",
		rpc.Method{Subject: events.RPCClusterRegister, Handler: rpc.Handle(nil, 0, func(_ context.Context, r rpc.ClusterRegisterRequest) (events.Cluster, error) {
			got = r
			return events.Cluster{Name: r.Name, Registered: true}, nil
		})},
		rpc.Method{Subject: events.RPCClusterList, Handler: rpc.Handle(nil, 0, func(_ context.Context, r rpc.ClusterListRequest) (rpc.ClusterList, error) {
			return rpc.ClusterList{Clusters: []events.Cluster{{Name: "lab", Registered: true}}}, nil
		})},
	)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	kubeconfig := t.TempDir() + "/kc"
	if err := writeFile(kubeconfig, "apiVersion: v1\nkind: Config\n"); err != nil {
		t.Fatal(err)
	}
	env := func(string) string { return srv.ClientURL() }
	var out bytes.Buffer
	if err := run(context.Background(), []string{"register", "-name", "lab", "-kubeconfig", kubeconfig, "-server", "https://lab.example:6443"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got.Name != "lab" || got.Caller.Role != "admin" || !strings.Contains(got.KubeConfig, "kind: Config") || got.Server != "https://lab.example:6443" {
		t.Errorf("register request = %+v", got)
	}
	out.Reset()
	if err := run(context.Background(), []string{"list"}, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), `"name": "lab"`) {
		t.Errorf("list = %v\n%s", err, out.String())
	}
	if err := run(context.Background(), []string{"frobnicate"}, env, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command succeeded")
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }
