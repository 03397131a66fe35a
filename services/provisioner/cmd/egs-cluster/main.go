// Command egs-cluster registers, lists and unregisters the clusters the
// provisioner serves, over the bus as an admin (run it where the NATS server
// is reachable: it is an operator's tool, like the services themselves).
//
//	egs-cluster [-nats.url URL] register -name NAME -kubeconfig FILE [-server URL]
//	egs-cluster [-nats.url URL] list
//	egs-cluster [-nats.url URL] unregister -name NAME
//
// The kubeconfig's current context is used; it is sealed by the provisioner
// before it is stored (docs/kubernetes.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "egs-cluster:", err)
		os.Exit(1)
	}
}

var caller = rpc.Caller{Subject: "egs-cluster", Role: "admin"}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("egs-cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := getenv("EGS_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&url, "nats.url", url, "NATS server URL (env EGS_NATS_URL).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("want a command: register, list or unregister")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	sub := flag.NewFlagSet(cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	name := sub.String("name", "", "Cluster name (a DNS label).")
	kubeconfig := sub.String("kubeconfig", "", "Kubeconfig file of the cluster (register).")
	server := sub.String("server", "", "API server URL for users' kubeconfigs, when not the kubeconfig's (register).")
	if err := sub.Parse(rest); err != nil {
		return err
	}
	nc, err := nats.Connect(url, nats.Name("egs-cluster"))
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out any
	switch cmd {
	case "register":
		b, err := os.ReadFile(*kubeconfig)
		if err != nil {
			return fmt.Errorf("read kubeconfig: %w", err)
		}
		out, err = rpc.Call[events.Cluster](ctx, nc, events.RPCClusterRegister,
			rpc.ClusterRegisterRequest{Caller: caller, Name: *name, KubeConfig: string(b), Server: *server})
		if err != nil {
			return err
		}
	case "unregister":
		out, err = rpc.Call[events.Cluster](ctx, nc, events.RPCClusterUnregister, rpc.ClusterRef{Caller: caller, Name: *name})
		if err != nil {
			return err
		}
	case "list":
		out, err = rpc.Call[rpc.ClusterList](ctx, nc, events.RPCClusterList, rpc.ClusterListRequest{Caller: caller})
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown command %q: want register, list or unregister", cmd)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
