package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/open-egs/egs/libs/testkit/redistest"
)

func TestLimiterSharedAcrossClients(t *testing.T) {
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	// Two clients stand for two edge replicas: they share one budget.
	a, b := redis.NewClient(opt), redis.NewClient(opt)
	defer a.Close()
	defer b.Close()
	la, lb := New(a, 10, time.Minute), New(b, 10, time.Minute)
	ctx := context.Background()
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := la
			if i%2 == 1 {
				l = lb
			}
			ok, wait, err := l.Allow(ctx, "tok-1")
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			} else if wait <= 0 || wait > time.Minute {
				t.Errorf("retry after %v", wait)
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 10 {
		t.Errorf("allowed %d of 30, want exactly 10", got)
	}
	if ok, _, _ := la.Allow(ctx, "tok-2"); !ok {
		t.Error("another token shares the budget")
	}
	if ok, _, _ := New(a, 0, time.Minute).Allow(ctx, "tok-1"); !ok {
		t.Error("limit 0 must allow everything")
	}
	// A short window ends and the budget comes back.
	ls := New(a, 1, 50*time.Millisecond)
	ls.Allow(ctx, "tok-3")
	if ok, _, _ := ls.Allow(ctx, "tok-3"); ok {
		t.Fatal("second request in the window allowed")
	}
	time.Sleep(80 * time.Millisecond)
	if ok, _, _ := ls.Allow(ctx, "tok-3"); !ok {
		t.Error("budget did not come back after the window")
	}
}
