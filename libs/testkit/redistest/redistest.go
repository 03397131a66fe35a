// Package redistest gives a test a real redis-server of its own: a child
// process on a Unix socket in a temporary directory, stopped when the test
// ends. A missing redis-server fails the test with the command that installs
// it; nothing falls back to a fake.
package redistest

import (
	"context"
	"os"
	"testing"

	"github.com/open-egs/egs/libs/redisproc"
)

// Server is a running redis-server for one test.
type Server struct {
	*redisproc.Proc
}

// Start runs a redis-server for t and returns it; it is stopped by t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	// A short directory: Unix socket paths are limited to about 100 bytes and
	// t.TempDir embeds the test's name.
	dir, err := os.MkdirTemp("", "egs-redis-")
	if err != nil {
		t.Fatalf("redis temp dir: %v", err)
	}
	p, err := redisproc.Start(context.Background(), dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("start redis-server: %v (run scripts/deps.sh to install it)", err)
	}
	t.Cleanup(func() {
		p.Stop()
		_ = os.RemoveAll(dir)
	})
	return &Server{Proc: p}
}
