package k8sinventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
)

// RegisterClusters makes the clusters bucket hold exactly the given clusters
// (name → simulated): it writes an entry only when it changed (ignoring At)
// and deletes the entries of clusters no longer served.
func RegisterClusters(ctx context.Context, kv jetstream.KeyValue, clusters map[string]bool, now time.Time) error {
	for name, simulated := range clusters {
		want := events.Cluster{Name: name, Simulated: simulated, At: now.UTC()}
		entry, err := kv.Get(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("get cluster %s: %w", name, err)
		default:
			var old events.Cluster
			if json.Unmarshal(entry.Value(), &old) == nil && old.Name == want.Name && old.Simulated == want.Simulated {
				continue
			}
		}
		b, err := json.Marshal(want)
		if err != nil {
			return fmt.Errorf("encode cluster %s: %w", name, err)
		}
		if _, err := kv.Put(ctx, name, b); err != nil {
			return fmt.Errorf("put cluster %s: %w", name, err)
		}
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list clusters: %w", err)
	}
	for _, k := range keys {
		if _, ok := clusters[k]; !ok {
			if err := kv.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete cluster %s: %w", k, err)
			}
		}
	}
	return nil
}
