// Package kvstore keeps API keys in the JetStream KV bucket the auth service
// owns (events.BucketAPIKeys), and reads the workspaces bucket the workspace
// service owns.
//
// The bucket holds two kinds of keys: "ak-<20 hex>" → the key record (its id),
// and "name.<32 hex of SHA-256(name)>" → the id of the key holding that name.
// The name claim is made with kv.Create before the record, so two replicas
// cannot both create a key with the same name.
package kvstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/auth/internal/apikey"
)

var _ apikey.Store = (*Store)(nil)

// staleClaim is how old a name claim without its record must be before
// another key may take the name over: creating a key takes milliseconds, so
// an older orphan is left by a crash between the claim and the record.
const staleClaim = 30 * time.Second

// record is the value of a key record. It holds the hash, never the secret.
type record struct {
	ID          string    `json:"id"`
	Hash        string    `json:"hash"`
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	UserName    string    `json:"userName"`
	Description string    `json:"description"`
	Workspace   string    `json:"workspace"`
	Validity    string    `json:"validity"`
	CreatedAt   time.Time `json:"createdAt"`
	Published   bool      `json:"published"`
}

// Store keeps API keys in a KV bucket. It is safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time // judges the age of name claims (server times)
}

// New returns a Store on kv (the bucket events.BucketAPIKeys).
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv, now: time.Now} }

// Bucket is the configuration of the API keys bucket.
func Bucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      events.BucketAPIKeys,
		Description: "API keys (hashed) and name claims; owner: auth service",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

func claimKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "name." + hex.EncodeToString(sum[:16])
}

func encode(k apikey.Key, published bool) ([]byte, error) {
	b, err := json.Marshal(record{ID: k.ID, Hash: k.Hash, Name: k.Name, Role: string(k.Role), UserName: k.UserName,
		Description: k.Description, Workspace: k.Workspace, Validity: k.Validity, CreatedAt: k.CreatedAt,
		Published: published})
	if err != nil {
		return nil, fmt.Errorf("encode api key %s: %w", k.ID, err)
	}
	return b, nil
}

func decode(e jetstream.KeyValueEntry) (apikey.Stored, error) {
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return apikey.Stored{}, fmt.Errorf("decode api key %s: %w", e.Key(), err)
	}
	return apikey.Stored{
		Key: apikey.Restore(r.ID, r.Hash, r.Name, apikey.Role(r.Role), r.UserName, r.Description, r.Workspace,
			r.Validity, r.CreatedAt),
		Revision:  e.Revision(),
		Published: r.Published,
	}, nil
}

// Create claims k's name, then stores k unpublished.
func (s *Store) Create(ctx context.Context, k apikey.Key) (uint64, error) {
	if err := s.claim(ctx, k); err != nil {
		return 0, err
	}
	b, err := encode(k, false)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, k.ID, b)
	if err != nil {
		s.release(ctx, k)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("create api key %s: %w", k.ID, apikey.ErrExists)
		}
		return 0, fmt.Errorf("create api key %s: %w", k.ID, err)
	}
	return rev, nil
}

// claim takes k's name: apikey.ErrNameTaken if a live key holds it.
func (s *Store) claim(ctx context.Context, k apikey.Key) error {
	ck := claimKey(k.Name)
	_, err := s.kv.Create(ctx, ck, []byte(k.ID))
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("claim api key name: %w", err)
	}
	e, err := s.kv.Get(ctx, ck)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("claim api key name: %w", apikey.ErrNameTaken) // released meanwhile; let the caller retry
	}
	if err != nil {
		return fmt.Errorf("read api key name claim: %w", err)
	}
	_, err = s.kv.Get(ctx, string(e.Value()))
	if err == nil || s.now().Sub(e.Created()) < staleClaim {
		return fmt.Errorf("claim api key name: %w", apikey.ErrNameTaken)
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrInvalidKey) {
		return fmt.Errorf("read api key %s: %w", e.Value(), err)
	}
	// An orphan claim (a crash between claim and record): take it over.
	if _, err := s.kv.Update(ctx, ck, []byte(k.ID), e.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("claim api key name: %w", apikey.ErrNameTaken)
		}
		return fmt.Errorf("take over api key name claim: %w", err)
	}
	return nil
}

// release frees k's name if k holds it; failures leave an orphan claim that
// a later Create takes over.
func (s *Store) release(ctx context.Context, k apikey.Key) {
	ck := claimKey(k.Name)
	e, err := s.kv.Get(ctx, ck)
	if err != nil || string(e.Value()) != k.ID {
		return
	}
	_ = s.kv.Delete(ctx, ck, jetstream.LastRevision(e.Revision()))
}

// Get returns the key with id, or apikey.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (apikey.Stored, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return apikey.Stored{}, fmt.Errorf("get api key %s: %w", id, apikey.ErrNotFound)
	}
	if err != nil {
		return apikey.Stored{}, fmt.Errorf("get api key %s: %w", id, err)
	}
	return decode(e)
}

// FindByName returns the key called name, or apikey.ErrNotFound.
func (s *Store) FindByName(ctx context.Context, name string) (apikey.Stored, error) {
	e, err := s.kv.Get(ctx, claimKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return apikey.Stored{}, fmt.Errorf("find api key named %q: %w", name, apikey.ErrNotFound)
	}
	if err != nil {
		return apikey.Stored{}, fmt.Errorf("find api key named %q: %w", name, err)
	}
	st, err := s.Get(ctx, string(e.Value()))
	if err != nil {
		return apikey.Stored{}, err
	}
	if st.Key.Name != name {
		return apikey.Stored{}, fmt.Errorf("find api key named %q: %w", name, apikey.ErrNotFound)
	}
	return st, nil
}

// List returns every key, read in one pass over the records (single-token
// keys; the name claims have two tokens).
func (s *Store) List(ctx context.Context) ([]apikey.Stored, error) {
	entries, err := bus.ReadAll(ctx, s.kv, "*")
	if err != nil {
		return nil, err
	}
	out := make([]apikey.Stored, 0, len(entries))
	for _, e := range entries {
		st, err := decode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// MarkPublished sets the published flag of the record at rev; a record that
// moved on since rev is left alone.
func (s *Store) MarkPublished(ctx context.Context, id string, rev uint64) error {
	st, err := s.Get(ctx, id)
	if errors.Is(err, apikey.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Revision != rev || st.Published {
		return nil
	}
	b, err := encode(st.Key, true)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, id, b, rev)
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("mark api key %s published: %w", id, err)
	}
	return nil
}

// Delete removes the record of k at rev, then frees its name:
// apikey.ErrChanged if the record moved on.
func (s *Store) Delete(ctx context.Context, k apikey.Key, rev uint64) error {
	err := s.kv.Delete(ctx, k.ID, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("delete api key %s at revision %d: %w", k.ID, rev, apikey.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("delete api key %s: %w", k.ID, err)
	}
	s.release(ctx, k)
	return nil
}

var _ apikey.Workspaces = (*Workspaces)(nil)

// Workspaces reads the workspaces bucket (events.BucketWorkspaces, owned by
// the workspace service). Until that bucket exists, no workspace does. It is
// safe for concurrent use.
type Workspaces struct {
	r *bus.BucketReader
}

// NewWorkspaces returns a workspaces reader on js.
func NewWorkspaces(js jetstream.JetStream) *Workspaces {
	return &Workspaces{r: bus.NewBucketReader(js, events.BucketWorkspaces)}
}

func (w *Workspaces) bucket(ctx context.Context) (jetstream.KeyValue, error) { return w.r.KV(ctx) }

// Exists reports whether the workspace called name exists.
func (w *Workspaces) Exists(ctx context.Context, name string) (bool, error) {
	if !events.ValidToken(name) {
		return false, nil
	}
	kv, err := w.bucket(ctx)
	if err != nil || kv == nil {
		return false, err
	}
	_, err = kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get workspace %s: %w", name, err)
	}
	return true, nil
}
