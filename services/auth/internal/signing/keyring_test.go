package signing_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/open-egs/egs/services/auth/internal/signing"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func kids(k *signing.Keyring) []string {
	var out []string
	for _, j := range k.JWKS().Keys {
		out = append(out, j.Kid)
	}
	return out
}

func TestKeyringRotationRetentionAndRevocation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	s, _, err := signing.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	k, err := signing.NewKeyring(s, path, path+".retired.json", time.Hour, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	first := k.Current().KeyID()
	second, old, err := k.Rotate()
	if err != nil || old != first || second == first || k.Current().KeyID() != second {
		t.Fatalf("rotate = %s, %s, %v", second, old, err)
	}
	if got := kids(k); len(got) != 2 || got[0] != second || got[1] != first {
		t.Fatalf("jwks after rotation %v", got)
	}
	// A restart finds both keys where the rotation left them.
	s2, created, err := signing.LoadOrCreate(path)
	if err != nil || created || s2.KeyID() != second {
		t.Fatalf("reload: %v created %v err %v", s2.KeyID(), created, err)
	}
	k2, err := signing.NewKeyring(s2, path, path+".retired.json", time.Hour, clk.now)
	if err != nil || len(kids(k2)) != 2 {
		t.Fatalf("reloaded keyring %v (%v)", kids(k2), err)
	}
	// Past the retention the old key leaves the JWKS.
	clk.add(time.Hour + time.Second)
	if got := kids(k); len(got) != 1 || got[0] != second {
		t.Fatalf("jwks past retention %v", got)
	}
	// Revocation: a retired key goes at once; the current key cannot.
	third, _, _ := k.Rotate()
	if ok, err := k.Revoke(second); !ok || err != nil {
		t.Fatalf("revoke retired: %v %v", ok, err)
	}
	if got := kids(k); len(got) != 1 || got[0] != third {
		t.Fatalf("jwks after revocation %v", got)
	}
	if _, err := k.Revoke(third); err == nil {
		t.Fatal("the current key was revoked")
	}
	if ok, _ := k.Revoke("nope"); ok {
		t.Fatal("revoked an unknown key")
	}
}
