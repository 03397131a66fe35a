// Package kvstore keeps workspaces, GPR templates and template bindings in the
// JetStream KV buckets the workspace service owns, and reads the cluster
// registry the provisioner owns. Values are the rpc wire shapes, so other
// services can read them.
package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/wire"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

var _ workspace.Store = (*Store)(nil)

// record is the value of a workspace key: the wire shape of rpc.Workspace
// (which other services read) plus the outbox flags of its events.
type record struct {
	rpc.Workspace
	Published     bool      `json:"published"`
	PolicyPending bool      `json:"policyPending,omitempty"`
	PolicyAt      time.Time `json:"policyAt,omitzero"`
}

// Store keeps workspaces in a KV bucket, key = workspace name. It is safe for
// concurrent use.
type Store struct {
	kv jetstream.KeyValue
}

// New returns a Store on kv (the bucket events.BucketWorkspaces).
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

// Bucket is the configuration of the workspaces bucket.
func Bucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      events.BucketWorkspaces,
		Description: "Workspaces; owner: workspace service",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

func encode(st workspace.Stored) ([]byte, error) {
	ws := st.Workspace
	b, err := json.Marshal(record{Workspace: rpc.Workspace{
		Name:       ws.Name,
		Clusters:   ws.Clusters,
		Namespaces: ws.Namespaces,
		Username:   ws.Username,
		Email:      ws.Email,
		CreatedAt:  ws.CreatedAt,
		Policy:     wire.PolicyToRPC(ws.Policy),
	}, Published: st.Published, PolicyPending: st.PolicyPending, PolicyAt: st.PolicyAt})
	if err != nil {
		return nil, fmt.Errorf("encode workspace %s: %w", ws.Name, err)
	}
	return b, nil
}

func decode(e jetstream.KeyValueEntry) (workspace.Stored, error) {
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return workspace.Stored{}, fmt.Errorf("decode workspace %s: %w", e.Key(), err)
	}
	w := r.Workspace
	return workspace.Stored{
		Workspace: workspace.Restore(w.Name, w.Clusters, w.Namespaces, w.Username, w.Email, w.CreatedAt,
			wire.PolicyFromRPC(w.Policy)),
		Revision:      e.Revision(),
		Published:     r.Published,
		PolicyPending: r.PolicyPending,
		PolicyAt:      r.PolicyAt,
	}, nil
}

// Create stores ws unpublished with kv.Create, so of two replicas creating the
// same name only one succeeds; the other gets workspace.ErrExists.
func (s *Store) Create(ctx context.Context, ws workspace.Workspace) (uint64, error) {
	b, err := encode(workspace.Stored{Workspace: ws})
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, ws.Name, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("create workspace %s: %w", ws.Name, workspace.ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create workspace %s: %w", ws.Name, err)
	}
	return rev, nil
}

// Get returns the workspace called name, or workspace.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (workspace.Stored, error) {
	e, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return workspace.Stored{}, fmt.Errorf("get workspace %s: %w", name, workspace.ErrNotFound)
	}
	if err != nil {
		return workspace.Stored{}, fmt.Errorf("get workspace %s: %w", name, err)
	}
	return decode(e)
}

// List returns every workspace, read in one pass over the bucket.
func (s *Store) List(ctx context.Context) ([]workspace.Stored, error) {
	entries, err := bus.ReadAll(ctx, s.kv, "")
	if err != nil {
		return nil, err
	}
	out := make([]workspace.Stored, 0, len(entries))
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
// moved on since rev is left alone (someone else marked or deleted it).
func (s *Store) MarkPublished(ctx context.Context, name string, rev uint64) error {
	st, err := s.Get(ctx, name)
	if errors.Is(err, workspace.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Revision != rev || st.Published {
		return nil
	}
	st.Published = true
	b, err := encode(st)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, name, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mark workspace %s published: %w", name, err)
	}
	return nil
}

// Delete removes the record at rev: workspace.ErrChanged if it moved on.
func (s *Store) Delete(ctx context.Context, name string, rev uint64) error {
	err := s.kv.Delete(ctx, name, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("delete workspace %s at revision %d: %w", name, rev, workspace.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("delete workspace %s: %w", name, err)
	}
	return nil
}

// SetPolicy replaces the policy of the record at rev, marks it published and
// its policy pending: workspace.ErrChanged if it moved on.
func (s *Store) SetPolicy(ctx context.Context, name string, p workspace.Policy, at time.Time, rev uint64) (uint64, error) {
	st, err := s.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	if st.Revision != rev {
		return 0, fmt.Errorf("set policy of workspace %s at revision %d: %w", name, rev, workspace.ErrChanged)
	}
	st.Workspace.Policy = p
	st.Published, st.PolicyPending, st.PolicyAt = true, true, at
	b, err := encode(st)
	if err != nil {
		return 0, err
	}
	newRev, err := s.kv.Update(ctx, name, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("set policy of workspace %s at revision %d: %w", name, rev, workspace.ErrChanged)
	}
	if err != nil {
		return 0, fmt.Errorf("set policy of workspace %s: %w", name, err)
	}
	return newRev, nil
}

// MarkPolicyPublished clears the pending flag of the record at rev; a record
// that moved on since rev is left alone.
func (s *Store) MarkPolicyPublished(ctx context.Context, name string, rev uint64) error {
	st, err := s.Get(ctx, name)
	if errors.Is(err, workspace.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Revision != rev || !st.PolicyPending {
		return nil
	}
	st.PolicyPending = false
	b, err := encode(st)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, name, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mark workspace %s policy published: %w", name, err)
	}
	return nil
}

var _ workspace.Clusters = (*Clusters)(nil)

// Clusters reads the cluster registry (events.BucketClusters, owned by the
// provisioner). Until the provisioner has declared the bucket, no cluster is
// registered. It is safe for concurrent use.
type Clusters struct {
	r *bus.BucketReader
}

// NewClusters returns a registry reader on js.
func NewClusters(js jetstream.JetStream) *Clusters {
	return &Clusters{r: bus.NewBucketReader(js, events.BucketClusters)}
}

func (c *Clusters) bucket(ctx context.Context) (jetstream.KeyValue, error) { return c.r.KV(ctx) }

// Registered reports whether the cluster called name is registered.
func (c *Clusters) Registered(ctx context.Context, name string) (bool, error) {
	kv, err := c.bucket(ctx)
	if err != nil || kv == nil {
		return false, err
	}
	_, err = kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get cluster %s: %w", name, err)
	}
	return true, nil
}
