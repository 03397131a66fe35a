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
	"github.com/open-egs/egs/services/auth/internal/users"
)

var (
	_ users.Store = (*Users)(nil)
	_ users.Codes = (*Codes)(nil)
)

// UsersBucket is the configuration of the users bucket: "u.<userId>" → user,
// "t.<tokenId>" → access token record (its SHA-256, never the secret).
func UsersBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      events.BucketUsers,
		Description: "Portal users and their access tokens (hashed); owner: auth service",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// CodesBucket is the configuration of the direct login codes bucket:
// "c.<SHA-256 of the code>" → code record. Entries expire after the longest
// code lifetime, used or not.
func CodesBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      events.BucketLoginCodes,
		Description: "Direct login codes (hashed, single use); owner: auth service",
		History:     1,
		TTL:         users.MaxDirectTTL,
		Storage:     jetstream.FileStorage,
	}
}

// Users keeps users and access tokens in the users bucket. It is safe for
// concurrent use.
type Users struct{ kv jetstream.KeyValue }

// NewUsers returns a store on kv (the bucket events.BucketUsers).
func NewUsers(kv jetstream.KeyValue) *Users { return &Users{kv: kv} }

func userKey(username string) string { return "u." + events.UserID(username) }
func tokenKey(id string) string      { return "t." + id }

type tokenRecord struct {
	ID        string    `json:"id"`
	Hash      string    `json:"hash"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

func (r tokenRecord) token() users.AccessToken {
	return users.AccessToken{ID: r.ID, Hash: r.Hash, Username: r.Username, CreatedAt: r.CreatedAt,
		ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}
}

func recordOf(t users.AccessToken) tokenRecord {
	return tokenRecord{ID: t.ID, Hash: t.Hash, Username: t.Username, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		RevokedAt: t.RevokedAt}
}

// CreateUser stores u: users.ErrExists if the name is taken.
func (s *Users) CreateUser(ctx context.Context, u rpc.User) (uint64, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return 0, fmt.Errorf("encode user %s: %w", u.Username, err)
	}
	rev, err := s.kv.Create(ctx, userKey(u.Username), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("create user %s: %w", u.Username, users.ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create user %s: %w", u.Username, err)
	}
	return rev, nil
}

// GetUser returns the user called username: users.ErrNotFound if none.
func (s *Users) GetUser(ctx context.Context, username string) (rpc.User, uint64, error) {
	if !users.ValidUsername(username) {
		return rpc.User{}, 0, fmt.Errorf("get user %q: %w", username, users.ErrNotFound)
	}
	e, err := s.kv.Get(ctx, userKey(username))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rpc.User{}, 0, fmt.Errorf("get user %s: %w", username, users.ErrNotFound)
	}
	if err != nil {
		return rpc.User{}, 0, fmt.Errorf("get user %s: %w", username, err)
	}
	var u rpc.User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return rpc.User{}, 0, fmt.Errorf("decode user %s: %w", username, err)
	}
	return u, e.Revision(), nil
}

// ListUsers returns every user.
func (s *Users) ListUsers(ctx context.Context) ([]rpc.User, error) {
	entries, err := bus.ReadAll(ctx, s.kv, "u.*")
	if err != nil {
		return nil, err
	}
	out := make([]rpc.User, 0, len(entries))
	for _, e := range entries {
		var u rpc.User
		if err := json.Unmarshal(e.Value(), &u); err != nil {
			return nil, fmt.Errorf("decode user %s: %w", e.Key(), err)
		}
		out = append(out, u)
	}
	return out, nil
}

// UpdateUser replaces the user stored at rev.
func (s *Users) UpdateUser(ctx context.Context, u rpc.User, rev uint64) (uint64, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return 0, fmt.Errorf("encode user %s: %w", u.Username, err)
	}
	nrev, err := s.kv.Update(ctx, userKey(u.Username), b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("update user %s: %w", u.Username, users.ErrChanged)
	}
	if err != nil {
		return 0, fmt.Errorf("update user %s: %w", u.Username, err)
	}
	return nrev, nil
}

// DeleteUser removes the user stored at rev.
func (s *Users) DeleteUser(ctx context.Context, username string, rev uint64) error {
	err := s.kv.Delete(ctx, userKey(username), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("delete user %s: %w", username, users.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("delete user %s: %w", username, err)
	}
	return nil
}

// CreateToken stores t.
func (s *Users) CreateToken(ctx context.Context, t users.AccessToken) error {
	b, err := json.Marshal(recordOf(t))
	if err != nil {
		return fmt.Errorf("encode access token %s: %w", t.ID, err)
	}
	if _, err := s.kv.Create(ctx, tokenKey(t.ID), b); err != nil {
		return fmt.Errorf("create access token %s: %w", t.ID, err)
	}
	return nil
}

// GetToken returns the token with id: users.ErrTokenNotFound if none.
func (s *Users) GetToken(ctx context.Context, id string) (users.AccessToken, uint64, error) {
	e, err := s.kv.Get(ctx, tokenKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return users.AccessToken{}, 0, fmt.Errorf("get access token %s: %w", id, users.ErrTokenNotFound)
	}
	if err != nil {
		return users.AccessToken{}, 0, fmt.Errorf("get access token %s: %w", id, err)
	}
	var r tokenRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return users.AccessToken{}, 0, fmt.Errorf("decode access token %s: %w", id, err)
	}
	return r.token(), e.Revision(), nil
}

// ListTokens returns every access token.
func (s *Users) ListTokens(ctx context.Context) ([]users.AccessToken, error) {
	entries, err := bus.ReadAll(ctx, s.kv, "t.*")
	if err != nil {
		return nil, err
	}
	out := make([]users.AccessToken, 0, len(entries))
	for _, e := range entries {
		var r tokenRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode access token %s: %w", e.Key(), err)
		}
		out = append(out, r.token())
	}
	return out, nil
}

// UpdateToken replaces the token stored at rev.
func (s *Users) UpdateToken(ctx context.Context, t users.AccessToken, rev uint64) error {
	b, err := json.Marshal(recordOf(t))
	if err != nil {
		return fmt.Errorf("encode access token %s: %w", t.ID, err)
	}
	_, err = s.kv.Update(ctx, tokenKey(t.ID), b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("update access token %s: %w", t.ID, users.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("update access token %s: %w", t.ID, err)
	}
	return nil
}

// DeleteToken removes the token with id.
func (s *Users) DeleteToken(ctx context.Context, id string) error {
	if err := s.kv.Delete(ctx, tokenKey(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete access token %s: %w", id, err)
	}
	return nil
}

// Codes keeps direct login codes in the codes bucket. It is safe for
// concurrent use.
type Codes struct{ kv jetstream.KeyValue }

// NewCodes returns a code store on kv (the bucket events.BucketLoginCodes).
func NewCodes(kv jetstream.KeyValue) *Codes { return &Codes{kv: kv} }

type codeRecord struct {
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Put stores c.
func (s *Codes) Put(ctx context.Context, c users.Code) error {
	b, err := json.Marshal(codeRecord{Username: c.Username, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt})
	if err != nil {
		return fmt.Errorf("encode login code: %w", err)
	}
	if _, err := s.kv.Create(ctx, "c."+c.Hash, b); err != nil {
		return fmt.Errorf("store login code: %w", err)
	}
	return nil
}

// Take reads the code and deletes it at the revision it read: of any number
// of concurrent takers exactly one deletes it, the others fail the
// revision check and get users.ErrCodeInvalid.
func (s *Codes) Take(ctx context.Context, hash string) (users.Code, error) {
	key := "c." + hash
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return users.Code{}, users.ErrCodeInvalid
	}
	if err != nil {
		return users.Code{}, fmt.Errorf("read login code: %w", err)
	}
	var r codeRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return users.Code{}, fmt.Errorf("decode login code: %w", err)
	}
	err = s.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return users.Code{}, users.ErrCodeInvalid
	}
	if err != nil {
		return users.Code{}, fmt.Errorf("spend login code: %w", err)
	}
	return users.Code{Hash: hash, Username: r.Username, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}, nil
}
