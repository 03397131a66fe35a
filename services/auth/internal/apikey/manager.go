package apikey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Stored is a key with its storage state.
type Stored struct {
	Key       Key
	Revision  uint64 // revision of the record in the store
	Published bool   // whether its created event is known to be on the bus
}

// Store keeps keys. Implementations are safe for concurrent use.
type Store interface {
	// Create stores k unpublished and returns its revision: ErrNameTaken if
	// another key has its name, ErrExists if its id is taken.
	Create(ctx context.Context, k Key) (uint64, error)
	// Get returns the key with id; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (Stored, error)
	// FindByName returns the key called name; ErrNotFound if there is none.
	FindByName(ctx context.Context, name string) (Stored, error)
	// List returns every key, in no particular order.
	List(ctx context.Context) ([]Stored, error)
	// MarkPublished sets the published flag of the record at rev; a record
	// that moved on since is left alone.
	MarkPublished(ctx context.Context, id string, rev uint64) error
	// Delete removes k at rev (and frees its name): ErrChanged if it moved on.
	Delete(ctx context.Context, k Key, rev uint64) error
}

// Workspaces says which workspaces exist.
type Workspaces interface {
	Exists(ctx context.Context, name string) (bool, error)
}

// Events publishes key events; the same (key, revision) always gives the same
// event id, so both calls are idempotent.
type Events interface {
	Created(ctx context.Context, k Key, rev uint64) error
	Deleted(ctx context.Context, k Key, rev uint64, at time.Time) error
}

// Manager runs the API key use cases. It is safe for concurrent use.
type Manager struct {
	store      Store
	workspaces Workspaces
	events     Events
	now        func() time.Time
}

// NewManager returns a Manager; now is the clock (time.Now if nil).
func NewManager(store Store, ws Workspaces, ev Events, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{store: store, workspaces: ws, events: ev, now: now}
}

// Create makes a key with a fresh secret and returns the secret (shown once)
// and the key. Errors: *ValidationError, ErrWorkspaceNotFound, ErrNameTaken,
// or an internal error.
func (m *Manager) Create(ctx context.Context, spec Spec) (string, Key, error) {
	secret := NewSecret()
	k, err := m.create(ctx, spec, secret)
	if err != nil {
		return "", Key{}, err
	}
	return secret, k, nil
}

func (m *Manager) create(ctx context.Context, spec Spec, secret string) (Key, error) {
	k, err := New(spec, secret, m.now())
	if err != nil {
		return Key{}, err
	}
	if k.Workspace != "" {
		if err := m.requireWorkspace(ctx, k.Workspace); err != nil {
			return Key{}, err
		}
	}
	rev, err := m.store.Create(ctx, k)
	if err != nil {
		return Key{}, err
	}
	if err := m.publishCreated(ctx, k, rev); err != nil {
		return Key{}, err
	}
	return k, nil
}

func (m *Manager) requireWorkspace(ctx context.Context, name string) error {
	ok, err := m.workspaces.Exists(ctx, name)
	if err != nil {
		return fmt.Errorf("check workspace %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("workspace %s: %w", name, ErrWorkspaceNotFound)
	}
	return nil
}

func (m *Manager) publishCreated(ctx context.Context, k Key, rev uint64) error {
	if err := m.events.Created(ctx, k, rev); err != nil {
		return fmt.Errorf("publish api key %s created: %w", k.ID, err)
	}
	if err := m.store.MarkPublished(ctx, k.ID, rev); err != nil {
		return fmt.Errorf("mark api key %s published: %w", k.ID, err)
	}
	return nil
}

// Authenticate returns the key whose secret is secret. Errors: ErrNoKey (empty
// secret), ErrUnauthenticated (unknown or deleted, or an Editor or Viewer key
// whose workspace no longer exists), ErrExpired (past its validity day), or
// an internal error.
func (m *Manager) Authenticate(ctx context.Context, secret string) (Key, error) {
	if secret == "" {
		return Key{}, ErrNoKey
	}
	st, err := m.store.Get(ctx, IDOf(Hash(secret)))
	if errors.Is(err, ErrNotFound) {
		return Key{}, ErrUnauthenticated
	}
	if err != nil {
		return Key{}, err
	}
	if !st.Key.Matches(secret) {
		return Key{}, ErrUnauthenticated
	}
	// A deleted workspace's keys are deleted when its event arrives; until
	// then (or if one slipped in while it was being deleted) they must not
	// work either.
	if st.Key.Role.BoundToWorkspace() {
		ok, err := m.workspaces.Exists(ctx, st.Key.Workspace)
		if err != nil {
			return Key{}, fmt.Errorf("check workspace %s of api key %s: %w", st.Key.Workspace, st.Key.ID, err)
		}
		if !ok {
			return Key{}, ErrUnauthenticated
		}
	}
	if st.Key.Expired(m.now()) {
		return Key{}, ErrExpired
	}
	return st.Key, nil
}

// lookup finds a key by its id or its secret (D3: the list shows ids, and
// either may be given to delete).
func (m *Manager) lookup(ctx context.Context, ref string) (Stored, error) {
	if ref == "" {
		return Stored{}, ErrNotFound
	}
	if strings.HasPrefix(ref, IDPrefix) {
		st, err := m.store.Get(ctx, ref)
		if !errors.Is(err, ErrNotFound) {
			return st, err
		}
	}
	st, err := m.store.Get(ctx, IDOf(Hash(ref)))
	if err != nil {
		return Stored{}, err
	}
	if !st.Key.Matches(ref) {
		return Stored{}, ErrNotFound
	}
	return st, nil
}

// deleteAttempts bounds the retries of Delete when the record moves under it.
const deleteAttempts = 3

// Delete deletes the key named by ref, its secret or its id: it publishes the
// deleted event (the edge revokes the key's tokens on it) and then removes
// the key, so a crash in between leaves a key a retry deletes again. Errors:
// ErrNotFound, or an internal error.
func (m *Manager) Delete(ctx context.Context, ref string) error {
	for attempt := 1; ; attempt++ {
		st, err := m.lookup(ctx, ref)
		if err != nil {
			return err
		}
		if err := m.remove(ctx, st); errors.Is(err, ErrChanged) && attempt < deleteAttempts {
			continue
		} else if err != nil {
			return err
		}
		return nil
	}
}

func (m *Manager) remove(ctx context.Context, st Stored) error {
	if !st.Published {
		if err := m.events.Created(ctx, st.Key, st.Revision); err != nil {
			return fmt.Errorf("publish api key %s created: %w", st.Key.ID, err)
		}
	}
	if err := m.events.Deleted(ctx, st.Key, st.Revision, m.now()); err != nil {
		return fmt.Errorf("publish api key %s deleted: %w", st.Key.ID, err)
	}
	return m.store.Delete(ctx, st.Key, st.Revision)
}

// DeleteWorkspaceKeys deletes every Editor and Viewer key bound to
// workspace, each as Delete does (its deleted event first), and returns how
// many it deleted. deletedAt is when the workspace was deleted: should the
// workspace exist again (deleted, then made anew before this ran), keys
// created after deletedAt belong to the new one and are kept. Running it
// again deletes nothing more, so redelivered events are harmless. Errors:
// internal only.
func (m *Manager) DeleteWorkspaceKeys(ctx context.Context, workspace string, deletedAt time.Time) (int, error) {
	if workspace == "" {
		return 0, nil
	}
	all, err := m.store.List(ctx)
	if err != nil {
		return 0, err
	}
	var bound []Key
	for _, st := range all {
		if st.Key.Role.BoundToWorkspace() && st.Key.Workspace == workspace {
			bound = append(bound, st.Key)
		}
	}
	if len(bound) == 0 {
		return 0, nil
	}
	recreated, err := m.workspaces.Exists(ctx, workspace)
	if err != nil {
		return 0, fmt.Errorf("check workspace %s: %w", workspace, err)
	}
	n := 0
	for _, k := range bound {
		if recreated && !deletedAt.IsZero() && k.CreatedAt.After(deletedAt) {
			continue
		}
		err := m.Delete(ctx, k.ID)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("delete api key %s of workspace %s: %w", k.ID, workspace, err)
		}
		n++
	}
	return n, nil
}

// List returns the keys sorted by name, only those of workspace when it is
// set. Errors: ErrWorkspaceNotFound, or an internal error.
func (m *Manager) List(ctx context.Context, workspace string) ([]Key, error) {
	if workspace != "" {
		if err := m.requireWorkspace(ctx, workspace); err != nil {
			return nil, err
		}
	}
	all, err := m.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(all))
	for _, st := range all {
		if workspace == "" || st.Key.Workspace == workspace {
			out = append(out, st.Key)
		}
	}
	slices.SortFunc(out, func(a, b Key) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Recover publishes the created event of every key whose flag says it may
// not have gone out, and returns how many it published.
func (m *Manager) Recover(ctx context.Context) (int, error) {
	all, err := m.store.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range all {
		if st.Published {
			continue
		}
		if err := m.publishCreated(ctx, st.Key, st.Revision); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// BootstrapName is the name of the Owner key made at first start.
const BootstrapName = "bootstrap"

// BootstrapValidity is the validity of the bootstrap key.
const BootstrapValidity = "2099-12-31"

// EnsureBootstrap makes sure an Owner key named "bootstrap" exists.
//
// With a secret, the key with that secret is made if missing, replacing a
// bootstrap key with another secret, so the configured secret always works.
// Without one, a key is generated only if no bootstrap key exists, and its
// secret returned (the caller shows it once); otherwise it returns "". Two
// replicas starting together make one key: the name can be claimed once.
func (m *Manager) EnsureBootstrap(ctx context.Context, secret string) (string, error) {
	spec := Spec{Name: BootstrapName, UserName: "admin", Description: "bootstrap Owner key",
		Role: string(Owner), Validity: BootstrapValidity}
	if secret != "" {
		st, err := m.store.Get(ctx, IDOf(Hash(secret)))
		if err == nil && st.Key.Matches(secret) {
			return "", nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", err
		}
		if old, err := m.store.FindByName(ctx, BootstrapName); err == nil {
			if err := m.remove(ctx, old); err != nil {
				return "", fmt.Errorf("replace bootstrap api key: %w", err)
			}
		} else if !errors.Is(err, ErrNotFound) {
			return "", err
		}
		if _, err := m.create(ctx, spec, secret); err != nil {
			return "", fmt.Errorf("create bootstrap api key: %w", err)
		}
		return "", nil
	}
	if _, err := m.store.FindByName(ctx, BootstrapName); err == nil {
		return "", nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	secret = NewSecret()
	_, err := m.create(ctx, spec, secret)
	if errors.Is(err, ErrNameTaken) {
		return "", nil // another replica made it
	}
	if err != nil {
		return "", fmt.Errorf("create bootstrap api key: %w", err)
	}
	return secret, nil
}
