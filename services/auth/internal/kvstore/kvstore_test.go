package kvstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/auth/internal/apikey"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	_, _, js := natstest.RunJetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), Bucket())
	if err != nil {
		t.Fatal(err)
	}
	return New(kv)
}

func newKey(t *testing.T, name string) apikey.Key {
	t.Helper()
	k, err := apikey.New(apikey.Spec{Name: name, Role: "Owner", Validity: "2099-12-31"}, apikey.NewSecret(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCreateSameNameConcurrently: of many creators of one name, one wins.
func TestCreateSameNameConcurrently(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const n = 8
	keys := make([]apikey.Key, n)
	for i := range keys {
		keys[i] = newKey(t, "same")
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Create(ctx, keys[i])
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, apikey.ErrNameTaken):
			t.Errorf("Create() = %v, want nil or ErrNameTaken", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creators won, want 1", won)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("List() = %d keys, err %v; want 1", len(all), err)
	}
}

// TestOrphanClaim: a claim left by a crash before its record blocks the name
// only while it is fresh.
func TestOrphanClaim(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.kv.Create(ctx, claimKey("orphan"), []byte("ak-00000000000000000000")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, newKey(t, "orphan")); !errors.Is(err, apikey.ErrNameTaken) {
		t.Fatalf("Create() with a fresh orphan claim = %v, want ErrNameTaken", err)
	}
	s.now = func() time.Time { return time.Now().Add(staleClaim + time.Second) }
	k := newKey(t, "orphan")
	if _, err := s.Create(ctx, k); err != nil {
		t.Fatalf("Create() with a stale orphan claim = %v, want nil", err)
	}
	got, err := s.FindByName(ctx, "orphan")
	if err != nil || got.Key.ID != k.ID {
		t.Errorf("FindByName() = %v, %v; want %s", got.Key.ID, err, k.ID)
	}
}

// TestDeleteFreesName: after Delete the name is free, the record gone, and a
// stale revision is refused.
func TestDeleteFreesName(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k := newKey(t, "n")
	rev, err := s.Create(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPublished(ctx, k.ID, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k, rev); !errors.Is(err, apikey.ErrChanged) {
		t.Fatalf("Delete() at a stale revision = %v, want ErrChanged", err)
	}
	st, err := s.Get(ctx, k.ID)
	if err != nil || !st.Published {
		t.Fatalf("Get() = %+v, %v; want published", st, err)
	}
	if err := s.Delete(ctx, k, st.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, k.ID); !errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("Get() after Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.FindByName(ctx, "n"); !errors.Is(err, apikey.ErrNotFound) {
		t.Errorf("FindByName() after Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Create(ctx, newKey(t, "n")); err != nil {
		t.Errorf("Create() of a freed name = %v", err)
	}
}
