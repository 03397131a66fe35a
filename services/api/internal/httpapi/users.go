package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// UserCacheTTL bounds how long the edge trusts what it cached of a user when
// an update event was missed (events drop the entry at once).
const UserCacheTTL = 30 * time.Second

// UserFetcher reads one user from the auth service.
type UserFetcher func(ctx context.Context, username string) (rpc.User, error)

// NATSUserFetcher reads users over NATS (egs.rpc.v1.auth.user-get).
func NATSUserFetcher(nc *nats.Conn, timeout time.Duration) UserFetcher {
	return func(ctx context.Context, username string) (rpc.User, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return rpc.Call[rpc.User](ctx, nc, events.RPCAuthUserGet, rpc.UserRef{Username: username})
	}
}

// UserDirectory caches users for the requests of their sessions and
// tokens, so that a request costs no round trip to auth. An entry lives
// UserCacheTTL at most and is dropped on the user's updated or deleted
// event. It is safe for concurrent use.
type UserDirectory struct {
	fetch UserFetcher
	now   func() time.Time

	mu    sync.Mutex
	users map[string]cachedUser
	gen   uint64 // bumped by every invalidation: a fetch that raced one is not cached
}

type cachedUser struct {
	u       rpc.User
	missing bool // auth answered NOT_FOUND (a deleted user's token still in use)
	at      time.Time
}

// NewUserDirectory returns a directory reading through fetch.
func NewUserDirectory(fetch UserFetcher, now func() time.Time) *UserDirectory {
	if now == nil {
		now = time.Now
	}
	return &UserDirectory{fetch: fetch, now: now, users: map[string]cachedUser{}}
}

// Get returns the user called username: a NOT_FOUND *rpc.Error if there is none.
func (d *UserDirectory) Get(ctx context.Context, username string) (rpc.User, error) {
	d.mu.Lock()
	c, ok := d.users[username]
	gen := d.gen
	d.mu.Unlock()
	if ok && d.now().Sub(c.at) < UserCacheTTL {
		if c.missing {
			return rpc.User{}, rpc.Errorf(rpc.NotFound, "user %s does not exist", username)
		}
		return c.u, nil
	}
	u, err := d.fetch(ctx, username)
	missing := rpc.CodeOf(err) == rpc.NotFound
	if err != nil && !missing {
		return rpc.User{}, err
	}
	// A NOT_FOUND is cached too, so that the tokens of a deleted user cost
	// no round trip each until they expire; a created event drops it.
	d.mu.Lock()
	if d.gen == gen {
		d.users[username] = cachedUser{u: u, missing: missing, at: d.now()}
	}
	d.mu.Unlock()
	return u, err
}

// Invalidate drops what is cached of username.
func (d *UserDirectory) Invalidate(username string) {
	d.mu.Lock()
	delete(d.users, username)
	d.gen++
	d.mu.Unlock()
}

// InvalidateAll drops the whole cache (after a reconnect to NATS, when
// events may have been missed).
func (d *UserDirectory) InvalidateAll() {
	d.mu.Lock()
	clear(d.users)
	d.gen++
	d.mu.Unlock()
}
