package workspace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrChanged is returned by Store.Delete when the record moved past the
// revision the caller read.
var ErrChanged = errors.New("workspace changed since it was read")

// Stored is a workspace with its storage state.
type Stored struct {
	Workspace Workspace
	Revision  uint64 // revision of the record in the store
	Published bool   // whether its created event is known to be on the bus
	// PolicyPending says the policy-updated event of the current policy may
	// not be on the bus yet; PolicyAt is when that policy was set.
	PolicyPending bool
	PolicyAt      time.Time
}

// Store keeps workspaces. Implementations are safe for concurrent use.
type Store interface {
	// Create stores ws unpublished and returns its revision; ErrExists if the name is taken.
	Create(ctx context.Context, ws Workspace) (uint64, error)
	// Get returns one workspace; ErrNotFound if there is none.
	Get(ctx context.Context, name string) (Stored, error)
	// List returns every workspace, in no particular order.
	List(ctx context.Context) ([]Stored, error)
	// MarkPublished sets the published flag of the record at rev. A record that
	// moved on since rev (marked or deleted by someone else) is left alone.
	MarkPublished(ctx context.Context, name string, rev uint64) error
	// Delete removes the record at rev; ErrChanged if it moved on, ErrNotFound if gone.
	Delete(ctx context.Context, name string, rev uint64) error
	// SetPolicy replaces the policy of the record at rev, marks the record
	// published and its policy pending (set at at), and returns the new
	// revision; ErrChanged if it moved on, ErrNotFound if gone.
	SetPolicy(ctx context.Context, name string, p Policy, at time.Time, rev uint64) (uint64, error)
	// MarkPolicyPublished clears the pending flag of the record at rev; a
	// record that moved on since rev is left alone.
	MarkPolicyPublished(ctx context.Context, name string, rev uint64) error
}

// Clusters says which clusters are registered.
type Clusters interface {
	Registered(ctx context.Context, name string) (bool, error)
}

// Events publishes workspace events. Every call is idempotent: the same
// (workspace, revision) always gives the same event id.
type Events interface {
	Created(ctx context.Context, ws Workspace, rev uint64) error
	Deleted(ctx context.Context, ws Workspace, rev uint64, at time.Time) error
	PolicyUpdated(ctx context.Context, ws Workspace, rev uint64, at time.Time) error
}

// Manager runs the workspace, template and binding use cases. It is safe for
// concurrent use.
type Manager struct {
	store     Store
	clusters  Clusters
	events    Events
	templates TemplateStore
	bindings  BindingStore
	now       func() time.Time
}

// NewManager returns a Manager; now is the clock (time.Now if nil).
func NewManager(store Store, clusters Clusters, ev Events, templates TemplateStore, bindings BindingStore,
	now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{store: store, clusters: clusters, events: ev, templates: templates, bindings: bindings, now: now}
}

// Create validates spec, checks its clusters are registered, stores the
// workspace and publishes its created event. Errors: *ValidationError,
// ErrExists, or an internal error (the workspace may then be stored and its
// event is published by Recover).
func (m *Manager) Create(ctx context.Context, spec Spec) (Workspace, error) {
	ws, err := New(spec, m.now())
	if err != nil {
		return Workspace{}, err
	}
	for _, c := range ws.Clusters {
		ok, err := m.clusters.Registered(ctx, c)
		if err != nil {
			return Workspace{}, fmt.Errorf("check cluster %s: %w", c, err)
		}
		if !ok {
			return Workspace{}, invalid("cluster %q is not registered", c)
		}
	}
	rev, err := m.store.Create(ctx, ws)
	if err != nil {
		return Workspace{}, err
	}
	if err := m.publishCreated(ctx, ws, rev); err != nil {
		return Workspace{}, err
	}
	return ws, nil
}

func (m *Manager) publishCreated(ctx context.Context, ws Workspace, rev uint64) error {
	if err := m.events.Created(ctx, ws, rev); err != nil {
		return fmt.Errorf("publish workspace %s created: %w", ws.Name, err)
	}
	if err := m.store.MarkPublished(ctx, ws.Name, rev); err != nil {
		return fmt.Errorf("mark workspace %s published: %w", ws.Name, err)
	}
	return nil
}

// Get returns the workspace called name, or ErrNotFound.
func (m *Manager) Get(ctx context.Context, name string) (Workspace, error) {
	if !ValidName(name) {
		return Workspace{}, ErrNotFound
	}
	st, err := m.store.Get(ctx, name)
	if err != nil {
		return Workspace{}, err
	}
	return st.Workspace, nil
}

// List returns the workspaces sorted by name; a non-empty scope lists only
// that workspace (none if it does not exist).
func (m *Manager) List(ctx context.Context, scope string) ([]Workspace, error) {
	if scope != "" {
		ws, err := m.Get(ctx, scope)
		if errors.Is(err, ErrNotFound) {
			return []Workspace{}, nil
		}
		if err != nil {
			return nil, err
		}
		return []Workspace{ws}, nil
	}
	all, err := m.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, 0, len(all))
	for _, st := range all {
		out = append(out, st.Workspace)
	}
	slices.SortFunc(out, func(a, b Workspace) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// deleteAttempts bounds the retries of Delete when the record moves under it.
const deleteAttempts = 3

// Delete publishes the deleted event of the workspace, removes its template
// binding and then the workspace, so a crash in between leaves a workspace
// that a retry deletes again (with the same event id). Errors: ErrNotFound,
// or an internal error.
func (m *Manager) Delete(ctx context.Context, name string) error {
	if !ValidName(name) {
		return ErrNotFound
	}
	for attempt := 1; ; attempt++ {
		st, err := m.store.Get(ctx, name)
		if err != nil {
			return err
		}
		if !st.Published {
			// Its created event may never have gone out: send it first, so
			// consumers never see a deletion of a workspace they never saw.
			if err := m.events.Created(ctx, st.Workspace, st.Revision); err != nil {
				return fmt.Errorf("publish workspace %s created: %w", name, err)
			}
		}
		if err := m.events.Deleted(ctx, st.Workspace, st.Revision, m.now()); err != nil {
			return fmt.Errorf("publish workspace %s deleted: %w", name, err)
		}
		if err := m.bindings.DeleteBinding(ctx, name, 0); err != nil && !errors.Is(err, ErrBindingNotFound) {
			return fmt.Errorf("delete binding of workspace %s: %w", name, err)
		}
		err = m.store.Delete(ctx, name, st.Revision)
		if errors.Is(err, ErrChanged) && attempt < deleteAttempts {
			continue
		}
		return err
	}
}

// Recover publishes the created and policy-updated events of every workspace
// whose flags say they may not have gone out (a crash between store and
// publish), and returns how many it published. Event ids make a repeat harmless.
func (m *Manager) Recover(ctx context.Context) (int, error) {
	all, err := m.store.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range all {
		if !st.Published {
			if err := m.publishCreated(ctx, st.Workspace, st.Revision); err != nil {
				return n, err
			}
			n++
			continue // SetPolicy marks the record published, so no policy event is pending
		}
		if st.PolicyPending {
			if err := m.publishPolicy(ctx, st.Workspace, st.Revision, st.PolicyAt); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// policyAttempts bounds the retries of SetPolicy when the record moves under it.
const policyAttempts = 3

// SetPolicy validates p and makes it the policy of the workspace called name,
// then publishes its policy-updated event. Errors: *ValidationError,
// ErrNotFound, or an internal error (the policy may then be stored and its
// event is published by Recover). Who may call it is the transport's check.
func (m *Manager) SetPolicy(ctx context.Context, name string, p Policy) (Workspace, error) {
	if err := p.Validate(); err != nil {
		return Workspace{}, err
	}
	if !ValidName(name) {
		return Workspace{}, ErrNotFound
	}
	p = p.clone()
	for attempt := 1; ; attempt++ {
		st, err := m.store.Get(ctx, name)
		if err != nil {
			return Workspace{}, err
		}
		if !st.Published {
			// SetPolicy marks the record published (its revision changes, and
			// with it the id Recover would give the created event): send it first.
			if err := m.events.Created(ctx, st.Workspace, st.Revision); err != nil {
				return Workspace{}, fmt.Errorf("publish workspace %s created: %w", name, err)
			}
		}
		ws, at := st.Workspace, m.now().UTC()
		ws.Policy = p
		rev, err := m.store.SetPolicy(ctx, name, p, at, st.Revision)
		if errors.Is(err, ErrChanged) && attempt < policyAttempts {
			continue
		}
		if err != nil {
			return Workspace{}, err
		}
		if err := m.publishPolicy(ctx, ws, rev, at); err != nil {
			return Workspace{}, err
		}
		return ws, nil
	}
}

func (m *Manager) publishPolicy(ctx context.Context, ws Workspace, rev uint64, at time.Time) error {
	if err := m.events.PolicyUpdated(ctx, ws, rev, at); err != nil {
		return fmt.Errorf("publish workspace %s policy-updated: %w", ws.Name, err)
	}
	if err := m.store.MarkPolicyPublished(ctx, ws.Name, rev); err != nil {
		return fmt.Errorf("mark workspace %s policy published: %w", ws.Name, err)
	}
	return nil
}
