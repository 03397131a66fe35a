package kubetest

import (
	"context"
	"os"
	"testing"
	"time"
)

// Run starts a control plane for t, in a directory of its own, and stops it
// at cleanup. Missing binaries fail the test with the command that builds
// them (`make kube-bins`).
func Run(t testing.TB, opts ...func(*Options)) *ControlPlane {
	t.Helper()
	// A short directory of our own: t.TempDir embeds the test's name, and the
	// logs are worth keeping when the test fails.
	dir, err := os.MkdirTemp("", "egs-kube-")
	if err != nil {
		t.Fatalf("kube temp dir: %v", err)
	}
	o := Options{Dir: dir}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("kubetest: control plane %s logs kept in %s", c.Name, dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return c
}

// Named sets the kubeconfig's cluster, user and context name.
func Named(name string) func(*Options) { return func(o *Options) { o.Name = name } }
