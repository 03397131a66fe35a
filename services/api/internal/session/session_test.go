package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/redistest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newStore(t *testing.T, clk *clock) *Store {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := Open(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return New(rdb, time.Hour, 10*time.Hour, clk.now)
}

func TestSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	st := newStore(t, clk)

	id, s, err := st.Create(ctx, Session{UserKey: "alice", Username: "alice", Method: rpc.LoginDirect}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 43 || s.CSRF == "" || s.CSRF == id || !s.ExpiresAt.Equal(s.CreatedAt.Add(10*time.Hour)) {
		t.Fatalf("created %q %+v", id, s)
	}
	// The record holds neither the id nor is stored under it.
	raw, err := st.rdb.Get(ctx, prefix+s.Handle).Result()
	if err != nil || contains(raw, id) {
		t.Fatalf("stored record %q (err %v) must not hold the id", raw, err)
	}
	if n, _ := st.rdb.Exists(ctx, prefix+id).Result(); n != 0 {
		t.Fatal("session stored under its id")
	}
	got, err := st.Get(ctx, id)
	if err != nil || got.Username != "alice" || !got.CheckCSRF(s.CSRF) || got.CheckCSRF(s.CSRF+"x") || got.CheckCSRF("") {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := st.Get(ctx, id+"x"); err != ErrNotFound {
		t.Fatalf("wrong id: %v", err)
	}

	// Sliding: used every 50 minutes it lives past the idle hour...
	for range 3 {
		clk.add(50 * time.Minute)
		if _, err := st.Get(ctx, id); err != nil {
			t.Fatalf("after 50m of idleness: %v", err)
		}
	}
	if ttl := st.rdb.PTTL(ctx, prefix+s.Handle).Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("redis ttl %v after a touch, want about the idle hour", ttl)
	}
	// ...but not an idle hour.
	clk.add(61 * time.Minute)
	if _, err := st.Get(ctx, id); err != ErrNotFound {
		t.Fatalf("after an idle hour: %v, want ErrNotFound", err)
	}

	// Absolute end: never past 10 h even when used.
	id, _, err = st.Create(ctx, Session{UserKey: "alice", Username: "alice"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		clk.add(59 * time.Minute)
		_, _ = st.Get(ctx, id)
	}
	clk.add(11 * time.Minute)
	if _, err := st.Get(ctx, id); err != ErrNotFound {
		t.Fatalf("past the absolute end: %v", err)
	}

	// A credential expiring sooner bounds the session.
	_, s, err = st.Create(ctx, Session{UserKey: "bob"}, clk.now().Add(2*time.Hour))
	if err != nil || !s.ExpiresAt.Equal(clk.now().UTC().Add(2*time.Hour)) {
		t.Fatalf("bounded session %+v %v", s, err)
	}
	if _, _, err := st.Create(ctx, Session{UserKey: "bob"}, clk.now().Add(-time.Second)); err == nil {
		t.Fatal("session for an expired credential")
	}
}

func TestDeleteByUserAndOrigin(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	st := newStore(t, clk)
	mk := func(user, origin string) string {
		id, _, err := st.Create(ctx, Session{UserKey: user, Origin: origin}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a1, a2, a3, b1 := mk("alice", "ut-1"), mk("alice", "ut-1"), mk("alice", ""), mk("bob", "ut-2")

	if s, err := st.Delete(ctx, a3); err != nil || s.UserKey != "alice" {
		t.Fatalf("delete: %+v %v", s, err)
	}
	if _, err := st.Delete(ctx, a3); err != ErrNotFound {
		t.Fatalf("second delete: %v", err)
	}
	if n, err := st.DeleteOrigin(ctx, "ut-1"); err != nil || n != 2 {
		t.Fatalf("delete origin = %d, %v; want 2", n, err)
	}
	for _, id := range []string{a1, a2} {
		if _, err := st.Get(ctx, id); err != ErrNotFound {
			t.Errorf("session of a revoked origin still there: %v", err)
		}
	}
	if _, err := st.Get(ctx, b1); err != nil {
		t.Fatalf("another user's session went: %v", err)
	}
	b2 := mk("bob", "")
	if n, err := st.DeleteUser(ctx, "bob"); err != nil || n != 2 {
		t.Fatalf("delete user = %d, %v; want 2", n, err)
	}
	if _, err := st.Get(ctx, b2); err != ErrNotFound {
		t.Fatal("bob's session survived logout-all")
	}
	if n, err := st.DeleteUser(ctx, "bob"); err != nil || n != 0 {
		t.Fatalf("again = %d, %v", n, err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestCreateRefusesAnExpiredCredential(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	st := newStore(t, clk)
	_, _, err := st.Create(context.Background(), Session{UserKey: "u", Username: "u"}, clk.now().Add(-time.Second))
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("Create with an expired credential = %v, want ErrExpired", err)
	}
}
