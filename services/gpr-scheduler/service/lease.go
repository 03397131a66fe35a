package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
)

const leaseKey = "leader"

// lease makes one scheduler replica the active one. The lease is a key in a
// bucket whose entries expire after ttl: the holder rewrites it every ttl/3;
// a standby creates it (which only succeeds once it is gone: released on a
// clean stop, or expired after a crash).
type lease struct {
	kv      jetstream.KeyValue
	id      string
	ttl     time.Duration
	rev     uint64
	log     *slog.Logger
	renewed atomic.Int64 // unix nanos of the last successful write of the lease
}

func newLease(ctx context.Context, js jetstream.JetStream, ttl time.Duration, log *slog.Logger) (*lease, error) {
	kv, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketGPRLease, History: 1, TTL: ttl,
		Storage: jetstream.FileStorage, Description: "active gpr-scheduler replica; owner: gpr-scheduler"})
	if err != nil {
		return nil, err
	}
	return &lease{kv: kv, id: bus.NewID(), ttl: ttl, log: log}, nil
}

// acquire blocks until this replica holds the lease or ctx ends.
func (l *lease) acquire(ctx context.Context) error {
	logged := false
	for {
		rev, err := l.kv.Create(ctx, leaseKey, []byte(l.id))
		if err == nil {
			l.rev = rev
			l.renewed.Store(time.Now().UnixNano())
			if logged {
				l.log.Info("took over the scheduler lease")
			}
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("acquire scheduler lease: %w", err)
		}
		if !logged {
			l.log.Info("another gpr-scheduler replica is active; standing by", "lease_ttl", l.ttl)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.ttl / 4):
		}
	}
}

// hold renews the lease until ctx ends (then returns nil, still holding it:
// call release once the work has stopped) or a renewal fails (then returns
// the error: the replica must stop at once, another may already be active).
func (l *lease) hold(ctx context.Context) error {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rev, err := l.kv.Update(ctx, leaseKey, []byte(l.id), l.rev)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("lost the scheduler lease: %w", err)
			}
			l.rev = rev
			l.renewed.Store(time.Now().UnixNano())
		}
	}
}

// release gives the lease up, so a standby takes over at once.
func (l *lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev)); err != nil {
		l.log.Warn("release scheduler lease", "err", err)
	}
}

// fence refuses writes once the last renewal is older than two thirds of the
// ttl: by the time the lease could expire, this replica has stopped writing.
func (l *lease) fence() error {
	if age := time.Since(time.Unix(0, l.renewed.Load())); age > l.ttl*2/3 {
		return fmt.Errorf("scheduler lease not renewed for %s: not writing", age.Round(time.Millisecond))
	}
	return nil
}
