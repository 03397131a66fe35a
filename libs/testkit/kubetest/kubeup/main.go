// Command kubeup runs a kubetest control plane (etcd, kube-apiserver,
// kube-controller-manager) in a directory until it is signalled; it is what
// scripts/kube-up.sh starts in the background. Once the API server is ready
// it writes <dir>/ready holding the admin kubeconfig's path, and prints that
// path.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/open-egs/egs/libs/testkit/kubetest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubeup:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".egs/kube", "State directory (certificates, etcd data, logs, kubeconfig); wiped at start.")
	name := flag.String("name", "kube", "Cluster, user and context name of the admin kubeconfig.")
	flag.Parse()
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil {
		return fmt.Errorf("wipe %s: %w", abs, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", abs, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	c, err := kubetest.Start(startCtx, kubetest.Options{Dir: abs, Name: *name})
	cancel()
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := os.WriteFile(filepath.Join(abs, "ready"), []byte(c.Kubeconfig+"\n"), 0o600); err != nil {
		return fmt.Errorf("write ready marker: %w", err)
	}
	fmt.Println(c.Kubeconfig)
	<-ctx.Done()
	return nil
}
