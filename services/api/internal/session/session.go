// Package session keeps portal sessions in Redis, shared by every edge
// replica, so a session survives a restart of the edge and of auth.
//
// A session is named by a 256-bit random id, the value of the egs_session
// cookie; Redis holds only its SHA-256 (the "handle"), so a copy of Redis
// lets nobody use a session. Keys:
//
//	egs:sess:<handle>          the session record (JSON), expiring after the
//	                           idle timeout, never later than its absolute end
//	egs:sess:user:<userKey>    set of the handles of one user's sessions
//	egs:sess:origin:<origin>   set of the handles opened with one credential
//	                           (an access token id or an API key id)
//
// Deleting every session of a user or of a credential is one Lua script,
// atomic in Redis.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/open-egs/egs/libs/rpc"
)

// ErrExpired is Create's answer for a login whose credential has already
// expired: the caller's fault, not the store's.
var ErrExpired = errors.New("the credential has expired")

// ErrNotFound is returned for an unknown, expired or deleted session.
var ErrNotFound = errors.New("session not found")

// Key prefixes in Redis.
const (
	prefix       = "egs:sess:"
	userPrefix   = "egs:sess:user:"
	originPrefix = "egs:sess:origin:"
)

// Defaults of the timeouts.
const (
	DefaultIdle    = 12 * time.Hour
	DefaultMaxAge  = 7 * 24 * time.Hour
	touchEvery     = time.Minute // sliding expiry is written at most this often per session
	idBytes        = 32
	maxCookieValue = 64
)

// Session is one portal session.
type Session struct {
	// Handle is the SHA-256 (hex) of the session id; it names the session in
	// Redis and, shortened, in audit events. Not stored in the record.
	Handle string `json:"-"`
	// UserKey groups the sessions of one principal: the username, or
	// "key:<keyId>" for an API token login.
	UserKey  string `json:"userKey"`
	Username string `json:"username"`
	// Caller is the fixed caller of an API token session (an Owner key);
	// nil for users, whose roles are read anew on each request.
	Caller    *rpc.Caller `json:"caller,omitempty"`
	Method    string      `json:"method"`
	Origin    string      `json:"origin,omitempty"`
	CSRF      string      `json:"csrf"`
	CreatedAt time.Time   `json:"createdAt"`
	LastSeen  time.Time   `json:"lastSeen"`
	ExpiresAt time.Time   `json:"expiresAt"` // absolute end
}

// IdleEnd is when the session ends unless used before.
func (s Session) idleEnd(idle time.Duration) time.Time {
	return minTime(s.LastSeen.Add(idle), s.ExpiresAt)
}

// ExpiresAtFor is when the session ends if not used again: the earlier of
// the idle and the absolute end.
func (s Session) ExpiresAtFor(idle time.Duration) time.Time { return s.idleEnd(idle) }

// CheckCSRF reports whether token is the session's CSRF token, in constant time.
func (s Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// ShortHandle is the handle as audit events show it.
func (s Session) ShortHandle() string {
	if len(s.Handle) < 16 {
		return s.Handle
	}
	return s.Handle[:16]
}

// Store keeps sessions in Redis. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	idle   time.Duration
	maxAge time.Duration
	now    func() time.Time
}

// New returns a store on rdb with the idle timeout and the absolute
// lifetime (0: the defaults); now is the clock (time.Now if nil).
func New(rdb redis.UniversalClient, idle, maxAge time.Duration, now func() time.Time) *Store {
	if idle <= 0 {
		idle = DefaultIdle
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if now == nil {
		now = time.Now
	}
	return &Store{rdb: rdb, idle: idle, maxAge: maxAge, now: now}
}

// Idle is the idle timeout.
func (st *Store) Idle() time.Duration { return st.idle }

// MaxAge is the absolute lifetime of a session.
func (st *Store) MaxAge() time.Duration { return st.maxAge }

func handleOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func random() string {
	var b [idBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Create stores a new session for s (its UserKey, Username, Caller, Method
// and Origin), ending at the latest at notAfter (zero: no limit besides
// the absolute lifetime), and returns its id (the cookie value) and the
// stored session.
func (st *Store) Create(ctx context.Context, s Session, notAfter time.Time) (string, Session, error) {
	now := st.now().UTC()
	s.CreatedAt, s.LastSeen = now, now
	s.ExpiresAt = now.Add(st.maxAge)
	if !notAfter.IsZero() {
		s.ExpiresAt = minTime(s.ExpiresAt, notAfter.UTC())
	}
	if !s.ExpiresAt.After(now) {
		return "", Session{}, ErrExpired
	}
	s.CSRF = random()
	id := random()
	s.Handle = handleOf(id)
	b, err := json.Marshal(s)
	if err != nil {
		return "", Session{}, fmt.Errorf("encode session: %w", err)
	}
	ttl := s.idleEnd(st.idle).Sub(now)
	pipe := st.rdb.TxPipeline()
	pipe.Set(ctx, prefix+s.Handle, b, ttl)
	st.index(ctx, pipe, userPrefix+s.UserKey, s.Handle)
	if s.Origin != "" {
		st.index(ctx, pipe, originPrefix+s.Origin, s.Handle)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return "", Session{}, fmt.Errorf("store session: %w", err)
	}
	return id, s, nil
}

func (st *Store) index(ctx context.Context, pipe redis.Pipeliner, key, handle string) {
	pipe.SAdd(ctx, key, handle)
	pipe.Expire(ctx, key, st.maxAge)
}

// Get returns the session with id, sliding its idle expiry forward (written
// at most once a minute). Errors: ErrNotFound, or a Redis error.
func (st *Store) Get(ctx context.Context, id string) (Session, error) {
	if id == "" || len(id) > maxCookieValue {
		return Session{}, ErrNotFound
	}
	h := handleOf(id)
	b, err := st.rdb.Get(ctx, prefix+h).Bytes()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return Session{}, fmt.Errorf("decode session: %w", err)
	}
	s.Handle = h
	now := st.now()
	if !now.Before(s.idleEnd(st.idle)) {
		return Session{}, ErrNotFound // Redis expires it any moment; the clock may be a test's
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		s.LastSeen = now.UTC()
		nb, err := json.Marshal(s)
		if err != nil {
			return Session{}, fmt.Errorf("encode session: %w", err)
		}
		// XX: never brings back a session deleted meanwhile.
		if err := st.rdb.SetArgs(ctx, prefix+h, nb, redis.SetArgs{Mode: "XX", TTL: s.idleEnd(st.idle).Sub(now)}).Err(); err != nil &&
			!errors.Is(err, redis.Nil) {
			return Session{}, fmt.Errorf("touch session: %w", err)
		}
	}
	return s, nil
}

// Delete ends the session with id; an unknown one is no error.
func (st *Store) Delete(ctx context.Context, id string) (Session, error) {
	if id == "" || len(id) > maxCookieValue {
		return Session{}, ErrNotFound
	}
	h := handleOf(id)
	b, err := st.rdb.GetDel(ctx, prefix+h).Bytes()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("delete session: %w", err)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return Session{}, fmt.Errorf("decode session: %w", err)
	}
	s.Handle = h
	pipe := st.rdb.Pipeline()
	pipe.SRem(ctx, userPrefix+s.UserKey, h)
	if s.Origin != "" {
		pipe.SRem(ctx, originPrefix+s.Origin, h)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return s, fmt.Errorf("unindex session: %w", err)
	}
	return s, nil
}

// deleteIndexed deletes every session named in the set KEYS[1] and the set
// itself, atomically, and returns how many sessions existed.
var deleteIndexed = redis.NewScript(`
local handles = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, h in ipairs(handles) do
  n = n + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
return n
`)

// DeleteUser ends every session of userKey and returns how many there were.
func (st *Store) DeleteUser(ctx context.Context, userKey string) (int, error) {
	return st.deleteSet(ctx, userPrefix+userKey)
}

// DeleteOrigin ends every session opened with credential origin and
// returns how many there were.
func (st *Store) DeleteOrigin(ctx context.Context, origin string) (int, error) {
	if origin == "" {
		return 0, nil
	}
	return st.deleteSet(ctx, originPrefix+origin)
}

func (st *Store) deleteSet(ctx context.Context, key string) (int, error) {
	n, err := deleteIndexed.Run(ctx, st.rdb, []string{key}, prefix).Int()
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %s: %w", key, err)
	}
	return n, nil
}

// Open connects to Redis at url (redis://, rediss:// or unix://) and checks
// it answers.
func Open(ctx context.Context, url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis ping: %w", err)
	}
	return rdb, nil
}
