package httpapi

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/rpc"
)

// TestUserDirectoryCachesNotFound: a deleted user's tokens cost one round
// trip to auth per cache lifetime, not one per request; an event drops the
// entry at once.
func TestUserDirectoryCachesNotFound(t *testing.T) {
	var calls atomic.Int32
	exists := atomic.Bool{}
	fetch := func(_ context.Context, name string) (rpc.User, error) {
		calls.Add(1)
		if exists.Load() {
			return rpc.User{Username: name}, nil
		}
		return rpc.User{}, rpc.Errorf(rpc.NotFound, "no user %s", name)
	}
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	d := NewUserDirectory(fetch, func() time.Time { return now })
	for range 5 {
		if _, err := d.Get(context.Background(), "gone"); rpc.CodeOf(err) != rpc.NotFound {
			t.Fatalf("Get of a missing user = %v, want NOT_FOUND", err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d fetches for 5 lookups of a missing user, want 1", calls.Load())
	}
	exists.Store(true)
	d.Invalidate("gone") // its created event
	if u, err := d.Get(context.Background(), "gone"); err != nil || u.Username != "gone" {
		t.Fatalf("after the created event: %+v %v", u, err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d fetches, want 2", calls.Load())
	}
}
