package users

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// Store keeps users and their access tokens. Implementations are safe for
// concurrent use.
type Store interface {
	// CreateUser stores u: ErrExists if the username is taken.
	CreateUser(ctx context.Context, u rpc.User) (uint64, error)
	// GetUser returns the user and its revision: ErrNotFound if none.
	GetUser(ctx context.Context, username string) (rpc.User, uint64, error)
	// ListUsers returns every user, in no particular order.
	ListUsers(ctx context.Context) ([]rpc.User, error)
	// UpdateUser replaces the user stored at rev: ErrChanged if it moved on,
	// ErrNotFound if it is gone.
	UpdateUser(ctx context.Context, u rpc.User, rev uint64) (uint64, error)
	// DeleteUser removes the user stored at rev: ErrChanged if it moved on.
	DeleteUser(ctx context.Context, username string, rev uint64) error
	// CreateToken stores t.
	CreateToken(ctx context.Context, t AccessToken) error
	// GetToken returns the token with id and its revision: ErrTokenNotFound if none.
	GetToken(ctx context.Context, id string) (AccessToken, uint64, error)
	// ListTokens returns every token, in no particular order.
	ListTokens(ctx context.Context) ([]AccessToken, error)
	// UpdateToken replaces the token stored at rev: ErrChanged if it moved on.
	UpdateToken(ctx context.Context, t AccessToken, rev uint64) error
	// DeleteToken removes the token with id (no error if it is gone).
	DeleteToken(ctx context.Context, id string) error
}

// Codes keeps direct login codes.
type Codes interface {
	// Put stores c until its expiry.
	Put(ctx context.Context, c Code) error
	// Take returns the code with hash and removes it, exactly once among any
	// number of concurrent calls: the others get ErrCodeInvalid, as does a
	// code that does not exist.
	Take(ctx context.Context, hash string) (Code, error)
}

// Workspaces says which workspaces exist.
type Workspaces interface {
	Exists(ctx context.Context, name string) (bool, error)
}

// Events publishes audit events egs.auth.v1.<family>.<id>.<event>; the same
// eventID is published once.
type Events interface {
	Publish(ctx context.Context, family, id, event, eventID string, a events.AuthAudit) error
}

// Manager runs the user use cases. It is safe for concurrent use.
type Manager struct {
	store      Store
	codes      Codes
	workspaces Workspaces
	events     Events
	now        func() time.Time
}

// NewManager returns a Manager; now is the clock (time.Now if nil).
func NewManager(store Store, codes Codes, ws Workspaces, ev Events, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{store: store, codes: codes, workspaces: ws, events: ev, now: now}
}

func (m *Manager) publish(ctx context.Context, family, id, ev, eventID string, a events.AuthAudit) error {
	a.Action = family + "." + ev
	if a.At.IsZero() {
		a.At = m.now().UTC()
	}
	if err := m.events.Publish(ctx, family, id, ev, eventID, a); err != nil {
		return fmt.Errorf("publish %s %s: %w", a.Action, id, err)
	}
	return nil
}

func (m *Manager) requireWorkspaces(ctx context.Context, ws []rpc.WorkspaceRole) error {
	for _, w := range ws {
		ok, err := m.workspaces.Exists(ctx, w.Name)
		if err != nil {
			return fmt.Errorf("check workspace %s: %w", w.Name, err)
		}
		if !ok {
			return fmt.Errorf("workspace %s: %w", w.Name, ErrWorkspaceNotFound)
		}
	}
	return nil
}

// Create registers a user. Errors: *ValidationError, ErrWorkspaceNotFound,
// ErrExists, or an internal error.
func (m *Manager) Create(ctx context.Context, spec rpc.UserSpec, source string) (rpc.User, error) {
	u, err := Normalize(spec)
	if err != nil {
		return rpc.User{}, err
	}
	if err := m.requireWorkspaces(ctx, u.Workspaces); err != nil {
		return rpc.User{}, err
	}
	now := m.now().UTC()
	u.CreatedAt, u.UpdatedAt, u.Source = now, now, source
	rev, err := m.store.CreateUser(ctx, u)
	if err != nil {
		return rpc.User{}, err
	}
	id := events.UserID(u.Username)
	err = m.publish(ctx, events.AuthFamilyUser, id, events.AuthCreated, eventID(id, events.AuthCreated, rev),
		events.AuthAudit{Actor: spec.Actor, User: u.Username, Detail: describe(u)})
	return u, err
}

// Get returns the user called username: ErrNotFound if none.
func (m *Manager) Get(ctx context.Context, username string) (rpc.User, error) {
	u, _, err := m.store.GetUser(ctx, username)
	return u, err
}

// List returns every user sorted by username.
func (m *Manager) List(ctx context.Context) ([]rpc.User, error) {
	all, err := m.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b rpc.User) int { return strings.Compare(a.Username, b.Username) })
	return all, nil
}

// updateAttempts bounds the retries of a read-modify-write that races another.
const updateAttempts = 5

// Update replaces the email, admin flag and workspaces of a user. Its
// updated event tells the edges to drop what they cached of the user.
// Errors: *ValidationError, ErrNotFound, ErrWorkspaceNotFound, or internal.
func (m *Manager) Update(ctx context.Context, spec rpc.UserSpec) (rpc.User, error) {
	want, err := Normalize(spec)
	if err != nil {
		return rpc.User{}, err
	}
	if err := m.requireWorkspaces(ctx, want.Workspaces); err != nil {
		return rpc.User{}, err
	}
	return m.modify(ctx, want.Username, spec.Actor, func(u *rpc.User) bool {
		u.Email, u.Admin, u.Workspaces = want.Email, want.Admin, want.Workspaces
		return true
	})
}

// modify applies change to the stored user (retrying a race), stores it if
// change reports a difference, and publishes its updated event.
func (m *Manager) modify(ctx context.Context, username, actor string, change func(*rpc.User) bool) (rpc.User, error) {
	for attempt := 1; ; attempt++ {
		u, rev, err := m.store.GetUser(ctx, username)
		if err != nil {
			return rpc.User{}, err
		}
		if !change(&u) {
			return u, nil
		}
		u.UpdatedAt = m.now().UTC()
		nrev, err := m.store.UpdateUser(ctx, u, rev)
		if errors.Is(err, ErrChanged) && attempt < updateAttempts {
			continue
		}
		if err != nil {
			return rpc.User{}, err
		}
		id := events.UserID(u.Username)
		return u, m.publish(ctx, events.AuthFamilyUser, id, events.AuthUpdated, eventID(id, events.AuthUpdated, nrev),
			events.AuthAudit{Actor: actor, User: u.Username, Detail: describe(u)})
	}
}

// Delete removes a user and every access token of theirs. The deleted
// event goes out first (the edges end the user's sessions on it), so a
// crash in between leaves a user that a retry deletes again. Errors:
// ErrNotFound, or internal.
func (m *Manager) Delete(ctx context.Context, username, actor string) error {
	for attempt := 1; ; attempt++ {
		u, rev, err := m.store.GetUser(ctx, username)
		if err != nil {
			return err
		}
		id := events.UserID(u.Username)
		if err := m.publish(ctx, events.AuthFamilyUser, id, events.AuthDeleted, eventID(id, events.AuthDeleted, rev),
			events.AuthAudit{Actor: actor, User: u.Username}); err != nil {
			return err
		}
		if err := m.deleteTokens(ctx, u.Username); err != nil {
			return err
		}
		err = m.store.DeleteUser(ctx, u.Username, rev)
		if errors.Is(err, ErrChanged) && attempt < updateAttempts {
			continue
		}
		return err
	}
}

func (m *Manager) deleteTokens(ctx context.Context, username string) error {
	all, err := m.store.ListTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range all {
		if t.Username == username {
			if err := m.store.DeleteToken(ctx, t.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// RemoveWorkspace drops workspace ws from every user that has it (the
// workspace was deleted) and returns how many users changed.
func (m *Manager) RemoveWorkspace(ctx context.Context, ws string) (int, error) {
	all, err := m.store.ListUsers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range all {
		if !slices.ContainsFunc(u.Workspaces, func(w rpc.WorkspaceRole) bool { return w.Name == ws }) {
			continue
		}
		_, err := m.modify(ctx, u.Username, "workspace-deleted", func(u *rpc.User) bool {
			before := len(u.Workspaces)
			u.Workspaces = slices.DeleteFunc(u.Workspaces, func(w rpc.WorkspaceRole) bool { return w.Name == ws })
			return len(u.Workspaces) != before
		})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// CreateToken issues an access token to a user and returns its secret,
// once. Errors: *ValidationError, ErrNotFound, or internal.
func (m *Manager) CreateToken(ctx context.Context, username, validity, actor string) (string, AccessToken, error) {
	now := m.now().UTC()
	exp, err := tokenExpiry(validity, now)
	if err != nil {
		return "", AccessToken{}, err
	}
	if _, _, err := m.store.GetUser(ctx, username); err != nil {
		return "", AccessToken{}, err
	}
	secret := NewSecret(TokenPrefix)
	h := Hash(secret)
	t := AccessToken{ID: TokenIDOf(h), Hash: h, Username: username, CreatedAt: now.Truncate(time.Second), ExpiresAt: exp}
	if err := m.store.CreateToken(ctx, t); err != nil {
		return "", AccessToken{}, err
	}
	err = m.publish(ctx, events.AuthFamilyAccessToken, t.ID, events.AuthCreated, t.ID+"."+events.AuthCreated,
		events.AuthAudit{Actor: actor, User: username, Target: t.ID, Until: exp})
	return secret, t, err
}

// retainRevoked is how long a revoked or expired token stays listed (and
// answers "revoked" or "expired" rather than "invalid") after its expiry.
const retainRevoked = 30 * 24 * time.Hour

// Tokens lists the access tokens of a user, newest first; tokens expired
// for longer than 30 days are removed on the way. Errors: ErrNotFound, or
// internal.
func (m *Manager) Tokens(ctx context.Context, username string) ([]AccessToken, error) {
	if _, _, err := m.store.GetUser(ctx, username); err != nil {
		return nil, err
	}
	all, err := m.store.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	now := m.now()
	var out []AccessToken
	for _, t := range all {
		if t.Username != username {
			continue
		}
		if now.Sub(t.ExpiresAt) > retainRevoked {
			if err := m.store.DeleteToken(ctx, t.ID); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b AccessToken) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// RevokeToken revokes an access token of a user: a later login with it is
// refused as revoked and the edges end the sessions it opened. Revoking a
// revoked token publishes its revoked event again (same event id), so a
// retry after a failed publish completes the revocation. Errors:
// ErrTokenNotFound (also for another user's token), or internal.
func (m *Manager) RevokeToken(ctx context.Context, username, id, actor string) error {
	for attempt := 1; ; attempt++ {
		t, rev, err := m.store.GetToken(ctx, id)
		if err != nil {
			return err
		}
		if t.Username != username {
			return ErrTokenNotFound
		}
		if t.RevokedAt.IsZero() {
			t.RevokedAt = m.now().UTC()
			err := m.store.UpdateToken(ctx, t, rev)
			if errors.Is(err, ErrChanged) && attempt < updateAttempts {
				continue
			}
			if err != nil {
				return err
			}
		}
		return m.publish(ctx, events.AuthFamilyAccessToken, t.ID, events.AuthRevoked, t.ID+"."+events.AuthRevoked,
			events.AuthAudit{Actor: actor, User: username, Target: t.ID, Until: t.ExpiresAt, At: t.RevokedAt})
	}
}

// AuthenticateToken returns the user an access token belongs to and the
// token. Errors: ErrTokenInvalid (unknown, or its user is gone),
// ErrTokenExpired, ErrTokenRevoked, or internal.
func (m *Manager) AuthenticateToken(ctx context.Context, secret string) (rpc.User, AccessToken, error) {
	if !IsAccessToken(secret) {
		return rpc.User{}, AccessToken{}, ErrTokenInvalid
	}
	t, _, err := m.store.GetToken(ctx, TokenIDOf(Hash(secret)))
	if errors.Is(err, ErrTokenNotFound) {
		return rpc.User{}, AccessToken{}, ErrTokenInvalid
	}
	if err != nil {
		return rpc.User{}, AccessToken{}, err
	}
	switch {
	case !t.Matches(secret):
		return rpc.User{}, AccessToken{}, ErrTokenInvalid
	case !t.RevokedAt.IsZero():
		return rpc.User{}, t, ErrTokenRevoked
	case !m.now().Before(t.ExpiresAt):
		return rpc.User{}, t, ErrTokenExpired
	}
	u, _, err := m.store.GetUser(ctx, t.Username)
	if errors.Is(err, ErrNotFound) {
		return rpc.User{}, t, ErrTokenInvalid
	}
	if err != nil {
		return rpc.User{}, t, err
	}
	return u, t, nil
}

// CreateCode makes a direct login code for a user, valid for ttl (0: 15
// minutes), and returns it, once. Errors: *ValidationError, ErrNotFound, or
// internal.
func (m *Manager) CreateCode(ctx context.Context, username string, ttl time.Duration, actor string) (string, Code, error) {
	if ttl == 0 {
		ttl = DefaultDirectTTL
	}
	if ttl < time.Minute || ttl > MaxDirectTTL {
		return "", Code{}, invalid("ttl must be between 1m and %s", MaxDirectTTL)
	}
	if _, _, err := m.store.GetUser(ctx, username); err != nil {
		return "", Code{}, err
	}
	now := m.now().UTC()
	code := NewSecret("")
	c := Code{Hash: Hash(code), Username: username, CreatedAt: now, ExpiresAt: now.Add(ttl).Truncate(time.Second)}
	if err := m.codes.Put(ctx, c); err != nil {
		return "", Code{}, err
	}
	handle := c.Hash[:16]
	err := m.publish(ctx, events.AuthFamilyDirectLogin, handle, events.AuthCreated, "dl."+handle+"."+events.AuthCreated,
		events.AuthAudit{Actor: actor, User: username, Target: handle, Until: c.ExpiresAt})
	return code, c, err
}

// RedeemCode spends a direct login code, exactly once, and returns its
// user. Errors: ErrCodeInvalid (unknown or already used; also when its user
// is gone), ErrCodeExpired, or internal.
func (m *Manager) RedeemCode(ctx context.Context, code string) (rpc.User, error) {
	if code == "" || len(code) > maxTokenSecretSize {
		return rpc.User{}, ErrCodeInvalid
	}
	c, err := m.codes.Take(ctx, Hash(code))
	if err != nil {
		return rpc.User{}, err
	}
	if !m.now().Before(c.ExpiresAt) {
		return rpc.User{}, ErrCodeExpired
	}
	u, _, err := m.store.GetUser(ctx, c.Username)
	if errors.Is(err, ErrNotFound) {
		return rpc.User{}, ErrCodeInvalid
	}
	return u, err
}

// Audit publishes a login decision (succeeded or failed) as an audit event
// under egs.auth.v1.login.<userId or "unknown">.<event>.
func (m *Manager) Audit(ctx context.Context, ev string, a events.AuthAudit) error {
	id := "unknown"
	if a.User != "" {
		id = events.UserID(a.User)
	}
	return m.publish(ctx, events.AuthFamilyLogin, id, ev, "", a)
}

func eventID(id, ev string, rev uint64) string { return fmt.Sprintf("%s.%s.%d", id, ev, rev) }

// describe summarises a user for the audit: admin flag and workspaces with roles.
func describe(u rpc.User) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin=%t workspaces=", u.Admin)
	for i, w := range u.Workspaces {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(w.Name + ":" + w.Role)
	}
	return b.String()
}
