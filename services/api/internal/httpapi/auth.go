package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/token"

	"github.com/open-egs/egs/services/api/internal/egs"
)

// SubjectAPIKeyDeleted matches the deletion event of every API key,
// egs.auth.v1.apikey.<keyId>.deleted. libs/events builds only concrete
// subjects (events.APIKeySubject), so the wildcard is spelt here.
const SubjectAPIKeyDeleted = "egs.auth.v1.apikey.*.deleted"

// AdminSubject is the subject of a caller holding the configured admin token.
const AdminSubject = "admin"

// JWKSRefreshInterval is the least time between two JWKS fetches triggered by
// tokens with an unknown kid, so forged kids cannot flood the auth service.
const JWKSRefreshInterval = time.Second

var (
	errUnauthenticated = rpc.Errorf(rpc.Unauthenticated, msgUnauthenticated)
	errForbidden       = rpc.Errorf(rpc.Forbidden, msgForbidden)
)

// JWKSFetcher fetches the current verification keys.
type JWKSFetcher func(ctx context.Context) (rpc.JWKS, error)

// Authenticator turns a bearer token into a caller without a round trip per
// request: access tokens are verified against a cached JWKS, the admin token
// by digest, and deleted API keys are denied for a token lifetime after their
// deletion event. It is safe for concurrent use.
type Authenticator struct {
	keys     token.KeySet
	fetch    JWKSFetcher
	now      func() time.Time
	log      *slog.Logger
	admin    [sha256.Size]byte
	hasAdmin bool

	refreshMu sync.Mutex // serialises fetches; guards lastFetch
	lastFetch time.Time

	denyMu sync.Mutex
	denied map[string]time.Time // key id → end of denial
}

// NewAuthenticator builds an authenticator. adminToken "" disables the admin
// token; only its SHA-256 digest is kept.
func NewAuthenticator(fetch JWKSFetcher, adminToken string, now func() time.Time, log *slog.Logger) *Authenticator {
	a := &Authenticator{fetch: fetch, now: now, log: log, denied: map[string]time.Time{}}
	if adminToken != "" {
		a.admin, a.hasAdmin = sha256.Sum256([]byte(adminToken)), true
	}
	return a
}

// NATSJWKSFetcher fetches the JWKS from the auth service over NATS.
func NATSJWKSFetcher(nc *nats.Conn, timeout time.Duration) JWKSFetcher {
	return func(ctx context.Context) (rpc.JWKS, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return rpc.Call[rpc.JWKS](ctx, nc, events.RPCAuthJWKS, rpc.Empty{})
	}
}

// Refresh fetches the JWKS now unless a fetch happened within
// JWKSRefreshInterval; it reports whether it fetched.
func (a *Authenticator) Refresh(ctx context.Context) (bool, error) {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	now := a.now()
	if !a.lastFetch.IsZero() && now.Sub(a.lastFetch) < JWKSRefreshInterval {
		return false, nil
	}
	a.lastFetch = now
	set, err := a.fetch(ctx)
	if err != nil {
		return true, fmt.Errorf("fetch jwks: %w", err)
	}
	a.keys.SetJWKS(set)
	return true, nil
}

// Authenticate verifies raw and returns the caller it stands for, or an
// UNAUTHENTICATED *rpc.Error.
func (a *Authenticator) Authenticate(ctx context.Context, raw string) (rpc.Caller, error) {
	if raw == "" {
		return rpc.Caller{}, errUnauthenticated
	}
	if a.hasAdmin {
		sum := sha256.Sum256([]byte(raw))
		if subtle.ConstantTimeCompare(sum[:], a.admin[:]) == 1 {
			return rpc.Caller{Subject: AdminSubject, Role: egs.RoleAdmin}, nil
		}
	}
	claims, err := a.keys.Verify(raw, a.now())
	if errors.Is(err, token.ErrUnknownKey) {
		if _, ferr := a.Refresh(ctx); ferr != nil {
			a.log.WarnContext(ctx, "jwks refresh", logkey.Err, ferr)
		}
		claims, err = a.keys.Verify(raw, a.now())
	}
	if err != nil {
		return rpc.Caller{}, errUnauthenticated
	}
	if claims.Subject == "" || a.revoked(claims.Subject) || claims.ID != "" && a.revoked(jtiKey(claims.ID)) {
		return rpc.Caller{}, errUnauthenticated
	}
	if strings.HasPrefix(claims.Subject, rpc.UserSubjectPrefix) {
		// A user's token (OAuth2 authorization_code): the edge reads the
		// user's roles anew instead of trusting the claims (principal.go).
		return rpc.Caller{Subject: claims.Subject}, nil
	}
	c := rpc.Caller{Subject: claims.Subject, Role: claims.Role}
	switch claims.Role {
	case egs.RoleOwner, egs.RoleAdmin:
	case egs.RoleEditor, egs.RoleViewer:
		if claims.Workspace == "" {
			return rpc.Caller{}, errUnauthenticated // an unbound Editor would reach every workspace
		}
		c.Workspace = claims.Workspace
	default:
		return rpc.Caller{}, errUnauthenticated
	}
	return c, nil
}

// Revoke denies tokens whose subject is keyID for token.TTL from now, the
// longest any of them can still be valid.
func (a *Authenticator) Revoke(keyID string) { a.RevokeAt(keyID, a.now()) }

// RevokeAt denies tokens whose subject is keyID until token.TTL after
// deletedAt, the time the key was deleted: no token of it outlives that. A
// denial already reaching further is kept.
func (a *Authenticator) RevokeAt(keyID string, deletedAt time.Time) {
	now, until := a.now(), deletedAt.Add(token.TTL)
	a.denyMu.Lock()
	defer a.denyMu.Unlock()
	for k, end := range a.denied {
		if !now.Before(end) {
			delete(a.denied, k)
		}
	}
	if now.Before(until) && until.After(a.denied[keyID]) {
		a.denied[keyID] = until
	}
}

// DenyUntil refuses tokens whose subject (or, with jtiKey, whose id) is key
// until until.
func (a *Authenticator) DenyUntil(key string, until time.Time) {
	now := a.now()
	a.denyMu.Lock()
	defer a.denyMu.Unlock()
	if now.Before(until) && until.After(a.denied[key]) {
		a.denied[key] = until
	}
}

// jtiKey is the deny list key of a token id.
func jtiKey(jti string) string { return "jti:" + jti }

// ForceRefresh fetches the JWKS now, whatever the rate limit (a signing key
// was rotated or revoked).
func (a *Authenticator) ForceRefresh(ctx context.Context) error {
	a.refreshMu.Lock()
	a.lastFetch = time.Time{}
	a.refreshMu.Unlock()
	_, err := a.Refresh(ctx)
	return err
}

func (a *Authenticator) revoked(sub string) bool {
	a.denyMu.Lock()
	defer a.denyMu.Unlock()
	until, ok := a.denied[sub]
	return ok && a.now().Before(until)
}

// SubscribeRevocations subscribes (core NATS, every replica gets every
// message) to API key deletions and revokes their tokens. The caller owns the
// subscription and unsubscribes it.
func (a *Authenticator) SubscribeRevocations(nc *nats.Conn) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(SubjectAPIKeyDeleted, func(m *nats.Msg) {
		id, ok := deletedKeyID(m.Subject)
		if !ok {
			return
		}
		a.Revoke(id)
		a.log.Info("api key revoked", logkey.Subject, m.Subject)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", SubjectAPIKeyDeleted, err)
	}
	return sub, nil
}

// catchUpBatch is how many deletions one read of the auth stream asks for.
const catchUpBatch = 256

// CatchUpRevocations revokes the keys deleted within the last token.TTL, as
// the auth stream (events.StreamAuth) recorded them, and returns how many
// deletions it read. Call it after SubscribeRevocations, so that a deletion
// published in between is seen by one or the other and none is missed. A
// missing stream (the auth service never started) or a server without
// JetStream means nothing was deleted. It reads with an ephemeral ordered
// consumer, which the server removes once idle.
func (a *Authenticator) CatchUpRevocations(ctx context.Context, js jetstream.JetStream) (int, error) {
	stream, err := js.Stream(ctx, events.StreamAuth)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open stream %s: %w", events.StreamAuth, err)
	}
	start := a.now().Add(-token.TTL)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{SubjectAPIKeyDeleted, events.SubjectOAuthRevoked, events.SubjectClientDeleted},
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("read %s deletions: %w", events.StreamAuth, err)
	}
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("read %s deletions: %w", events.StreamAuth, err)
		}
		batch, err := cons.FetchNoWait(catchUpBatch)
		if err != nil {
			return n, fmt.Errorf("read %s deletions: %w", events.StreamAuth, err)
		}
		got, last := 0, false
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			last = meta.NumPending == 0
			if id, ok := deletedKeyID(m.Subject()); ok {
				a.RevokeAt(id, meta.Timestamp) // an API key or an OAuth2 client
				n++
			} else {
				a.applyOAuth(m.Subject(), m.Data())
				n++
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return n, fmt.Errorf("read %s deletions: %w", events.StreamAuth, err)
		}
		if got == 0 || last {
			return n, nil
		}
	}
}

// deletedKeyID returns the id of egs.auth.v1.apikey.<keyId>.deleted or of
// egs.auth.v1.client.<clientId>.deleted.
func deletedKeyID(subject string) (string, bool) {
	toks := strings.Split(subject, ".")
	if len(toks) != 6 || toks[4] == "" || toks[5] != "deleted" || toks[3] != "apikey" && toks[3] != events.AuthFamilyClient {
		return "", false
	}
	return toks[4], true
}

// Access is what a route needs from the caller's role (D15).
type Access int

// The access levels.
const (
	Read   Access = iota // any role; GET routes only
	Write                // Owner, admin, Editor
	Manage               // Owner, admin: workspaces and API keys
)

// permits reports whether c's role grants a.
func permits(c rpc.Caller, a Access) bool {
	switch c.Role {
	case egs.RoleOwner, egs.RoleAdmin:
		return true
	case egs.RoleEditor:
		return a <= Write
	case egs.RoleViewer:
		return a == Read
	}
	return false
}

// allowWorkspace returns FORBIDDEN unless c may act on workspace ws.
func allowWorkspace(c rpc.Caller, ws string) error {
	if !c.Allows(ws) {
		return errForbidden
	}
	return nil
}

type callerKey struct{}

func withCaller(ctx context.Context, c rpc.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerOf returns the caller the auth middleware stored in ctx.
func callerOf(ctx context.Context) rpc.Caller {
	c, _ := ctx.Value(callerKey{}).(rpc.Caller)
	return c
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(h string) string {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}
