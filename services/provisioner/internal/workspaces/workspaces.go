// Package workspaces mirrors the workspace service's bucket (EGS_WORKSPACES)
// in memory for the provisioner: which namespaces each workspace has on which
// clusters. It waits for the bucket to exist (the workspace service declares
// it) and then follows it with a watcher.
package workspaces

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
)

// Workspace is what the provisioner needs of a workspace.
type Workspace struct {
	Name       string
	Clusters   []string
	Namespaces []string
}

// OnCluster reports whether the workspace spans cluster.
func (w Workspace) OnCluster(cluster string) bool { return slices.Contains(w.Clusters, cluster) }

// Cache is the in-memory mirror. Create it with New, run it with Run; its
// methods are safe for concurrent use.
type Cache struct {
	reader  *bus.BucketReader
	log     *slog.Logger
	changed func(name string) // called after a workspace was added, changed or deleted

	mu     sync.RWMutex
	byName map[string]Workspace
	synced bool
}

// New returns a cache of the bucket on js; changed (may be nil) is called
// with the name of every workspace that changed, once synced.
func New(js jetstream.JetStream, log *slog.Logger, changed func(name string)) *Cache {
	if changed == nil {
		changed = func(string) {}
	}
	return &Cache{reader: bus.NewBucketReader(js, events.BucketWorkspaces), log: log, changed: changed,
		byName: map[string]Workspace{}}
}

// Run waits for the bucket, loads it, then follows it until ctx ends; a
// watcher that closes is reopened. It returns nil when ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		kv, err := c.reader.KV(ctx)
		if err == nil && kv != nil {
			err = c.follow(ctx, kv)
		}
		if err != nil && ctx.Err() == nil {
			c.log.Warn("workspaces bucket; will retry", logkey.Err, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (c *Cache) follow(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", events.BucketWorkspaces, err)
	}
	defer func() { _ = w.Stop() }()
	initial := map[string]Workspace{}
	loading := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("workspaces watcher closed")
			}
			if e == nil { // the current values are in
				c.replace(initial)
				loading = false
				continue
			}
			ws, deleted := decode(e)
			if loading {
				if deleted {
					delete(initial, e.Key())
				} else {
					initial[e.Key()] = ws
				}
				continue
			}
			c.apply(e.Key(), ws, deleted)
		}
	}
}

// decode reads an entry; a value it cannot read counts as no workspace.
func decode(e jetstream.KeyValueEntry) (Workspace, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return Workspace{}, true
	}
	var w rpc.Workspace
	if err := json.Unmarshal(e.Value(), &w); err != nil || w.Name == "" {
		return Workspace{}, true
	}
	ns := w.Namespaces
	if len(ns) == 0 {
		ns = []string{w.Name}
	}
	return Workspace{Name: w.Name, Clusters: slices.Clone(w.Clusters), Namespaces: slices.Clone(ns)}, false
}

func (c *Cache) replace(all map[string]Workspace) {
	c.mu.Lock()
	old := c.byName
	c.byName, c.synced = all, true
	c.mu.Unlock()
	for name := range all {
		c.changed(name)
	}
	for name := range old {
		if _, ok := all[name]; !ok {
			c.changed(name)
		}
	}
}

func (c *Cache) apply(key string, ws Workspace, deleted bool) {
	c.mu.Lock()
	if deleted {
		delete(c.byName, key)
	} else {
		c.byName[key] = ws
	}
	c.mu.Unlock()
	c.changed(key)
}

// Synced reports whether the bucket has been loaded once.
func (c *Cache) Synced() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced
}

// Get returns the workspace called name.
func (c *Cache) Get(name string) (Workspace, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	w, ok := c.byName[name]
	return w, ok
}

// Lookup returns the workspace called name from the cache, or else from the
// bucket (a command may arrive before the watcher delivered its workspace).
func (c *Cache) Lookup(ctx context.Context, name string) (Workspace, bool, error) {
	if w, ok := c.Get(name); ok {
		return w, true, nil
	}
	kv, err := c.reader.KV(ctx)
	if err != nil || kv == nil {
		return Workspace{}, false, err
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Workspace{}, false, nil
	}
	if err != nil {
		return Workspace{}, false, fmt.Errorf("get workspace %s: %w", name, err)
	}
	w, deleted := decode(e)
	return w, !deleted, nil
}

// All returns every workspace by name.
func (c *Cache) All() map[string]Workspace {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return maps.Clone(c.byName)
}
