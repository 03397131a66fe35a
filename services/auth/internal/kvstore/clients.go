package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/auth/internal/oauth"
)

var _ oauth.ClientStore = (*Clients)(nil)

// ClientsBucket is the configuration of the OAuth2 clients bucket:
// "<clientId>" → client (the SHA-256 of its secret, never the secret).
func ClientsBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      events.BucketOAuthClients,
		Description: "OAuth2 clients (secrets hashed); owner: auth service",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// Clients keeps OAuth2 clients in their bucket. Once Watch runs, reads are
// served from an in-memory copy the bucket's watch keeps current (every
// token request reads its client twice), a miss falling back to the
// bucket. It is safe for concurrent use.
type Clients struct {
	kv jetstream.KeyValue

	mu    sync.RWMutex
	cache map[string]oauth.Client // nil until the watch has delivered the bucket
}

// NewClients returns a store on kv (the bucket events.BucketOAuthClients).
func NewClients(kv jetstream.KeyValue) *Clients { return &Clients{kv: kv} }

// Watch keeps the in-memory copy current until ctx ends.
func (s *Clients) Watch(ctx context.Context, log *slog.Logger) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", events.BucketOAuthClients, err)
	}
	go func() {
		defer func() { _ = w.Stop() }()
		initial := map[string]oauth.Client{}
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the current values are all in
					s.mu.Lock()
					s.cache = initial
					s.mu.Unlock()
					initial = nil
					continue
				}
				s.apply(initial, e, log)
			}
		}
	}()
	return nil
}

func (s *Clients) apply(initial map[string]oauth.Client, e jetstream.KeyValueEntry, log *slog.Logger) {
	var c oauth.Client
	del := e.Operation() != jetstream.KeyValuePut
	if !del {
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			log.Warn("decode watched oauth2 client", "key", e.Key(), logkey.Err, err)
			return
		}
	}
	m := initial
	if m == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		m = s.cache
	}
	if del {
		delete(m, e.Key())
	} else {
		m[e.Key()] = c
	}
}

func (s *Clients) cached(id string) (oauth.Client, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.cache[id]
	return c, ok
}

func (s *Clients) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// Create stores c: oauth.ErrClientExists if its id is taken.
func (s *Clients) Create(ctx context.Context, c oauth.Client) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode client %s: %w", c.ID, err)
	}
	if _, err := s.kv.Create(ctx, c.ID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return oauth.ErrClientExists
		}
		return fmt.Errorf("create client %s: %w", c.ID, err)
	}
	return nil
}

// Get returns the client with id: oauth.ErrClientNotFound if none.
func (s *Clients) Get(ctx context.Context, id string) (oauth.Client, error) {
	if !events.ValidToken(id) {
		return oauth.Client{}, oauth.ErrClientNotFound
	}
	if c, ok := s.cached(id); ok {
		return c, nil
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return oauth.Client{}, oauth.ErrClientNotFound
	}
	if err != nil {
		return oauth.Client{}, fmt.Errorf("get client %s: %w", id, err)
	}
	var c oauth.Client
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return oauth.Client{}, fmt.Errorf("decode client %s: %w", id, err)
	}
	return c, nil
}

// List returns every client.
func (s *Clients) List(ctx context.Context) ([]oauth.Client, error) {
	entries, err := bus.ReadAll(ctx, s.kv, ">")
	if err != nil {
		return nil, err
	}
	out := make([]oauth.Client, 0, len(entries))
	for _, e := range entries {
		var c oauth.Client
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return nil, fmt.Errorf("decode client %s: %w", e.Key(), err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Delete removes the client with id.
func (s *Clients) Delete(ctx context.Context, id string) error {
	s.forget(id)
	if err := s.kv.Delete(ctx, id); err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return oauth.ErrClientNotFound
		}
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	return nil
}
