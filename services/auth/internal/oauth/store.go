package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/redis/go-redis/v9"
)

// Redis key prefixes of the issuer's state. Every key expires with what it
// holds (a code after its lifespan, a token after its own).
const (
	keyCode    = "egs:oauth:code:"
	keyPKCE    = "egs:oauth:pkce:"
	keyOIDC    = "egs:oauth:oidc:"
	keyAccess  = "egs:oauth:at:"
	keyRefresh = "egs:oauth:rt:"
	keyReqAT   = "egs:oauth:req-at:" // request id → set of access token signatures
	keyReqRT   = "egs:oauth:req-rt:" // request id → set of refresh token signatures
)

// RevokedFunc is told of every access token the store revokes, so that the
// edges can refuse its JWT until it expires.
type RevokedFunc func(ctx context.Context, jti, subject string, until time.Time)

// Store is fosite's storage on Redis (codes, PKCE and OIDC sessions, access
// and refresh tokens, revocation) with the client manager on the clients
// bucket. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	clients   ClientStore
	codeTTL   time.Duration
	accessTTL time.Duration
	refTTL    time.Duration
	revoked   RevokedFunc
}

// NewStore returns the storage.
func NewStore(rdb redis.UniversalClient, clients ClientStore, codeTTL, accessTTL, refreshTTL time.Duration, revoked RevokedFunc) *Store {
	if revoked == nil {
		revoked = func(context.Context, string, string, time.Time) {}
	}
	return &Store{rdb: rdb, clients: clients, codeTTL: codeTTL + time.Minute, accessTTL: accessTTL + time.Minute,
		refTTL: refreshTTL + time.Minute, revoked: revoked}
}

// stored is a fosite request as Redis keeps it.
type stored struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requestedAt"`
	ClientID          string          `json:"clientId"`
	RequestedScope    []string        `json:"requestedScope"`
	GrantedScope      []string        `json:"grantedScope"`
	RequestedAudience []string        `json:"requestedAudience"`
	GrantedAudience   []string        `json:"grantedAudience"`
	Form              url.Values      `json:"form"`
	Session           json.RawMessage `json:"session"`
	Active            bool            `json:"-"` // from the marker key
}

func encodeRequest(r fosite.Requester) ([]byte, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return nil, fmt.Errorf("encode oauth2 session: %w", err)
	}
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		if k == "client_secret" || k == "code_verifier" || k == "code" || k == "refresh_token" || k == "password" {
			continue // never keep a secret
		}
		form[k] = v
	}
	return json.Marshal(stored{ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(),
		Form: form, Session: sess})
}

// get reads key and rebuilds the request into session.
func (s *Store) get(ctx context.Context, key string, session fosite.Session) (*fosite.Request, bool, error) {
	vals, err := s.rdb.MGet(ctx, key, key+":off").Result()
	if err != nil {
		return nil, false, fmt.Errorf("read oauth2 state: %w", err)
	}
	raw, ok := vals[0].(string)
	if !ok {
		return nil, false, fosite.ErrNotFound
	}
	var st stored
	st.Active = vals[1] == nil
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, false, fmt.Errorf("decode oauth2 state: %w", err)
	}
	if session == nil {
		session = NewSession()
	}
	if err := json.Unmarshal(st.Session, session); err != nil {
		return nil, false, fmt.Errorf("decode oauth2 session: %w", err)
	}
	c, err := s.GetClient(ctx, st.ClientID)
	if err != nil {
		return nil, false, err
	}
	r := &fosite.Request{ID: st.ID, RequestedAt: st.RequestedAt, Client: c,
		RequestedScope: fosite.Arguments(st.RequestedScope), GrantedScope: fosite.Arguments(st.GrantedScope),
		RequestedAudience: fosite.Arguments(st.RequestedAudience), GrantedAudience: fosite.Arguments(st.GrantedAudience),
		Form: st.Form, Session: session}
	if r.Form == nil {
		r.Form = url.Values{}
	}
	return r, st.Active, nil
}

func (s *Store) put(ctx context.Context, key string, r fosite.Requester, ttl time.Duration) error {
	b, err := encodeRequest(r)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, key, b, ttl).Err(); err != nil {
		return fmt.Errorf("store oauth2 state: %w", err)
	}
	return nil
}

// deactivate marks the record at KEYS[1] inactive with a marker key that
// expires with it (the record itself is left as it is).
var deactivate = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl == -1 then ttl = 86400000 end
redis.call('SET', KEYS[1] .. ':off', '1', 'PX', ttl)
return 1
`)

// ---- fosite.ClientManager ----

// GetClient returns the registered client.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.clients.Get(ctx, id)
	if errors.Is(err, ErrClientNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return fositeClient(c), nil
}

// ClientAssertionJWTValid accepts every jti: clients authenticate with
// secrets, not with JWT assertions.
func (s *Store) ClientAssertionJWTValid(context.Context, string) error { return nil }

// SetClientAssertionJWT records nothing (see ClientAssertionJWTValid).
func (s *Store) SetClientAssertionJWT(context.Context, string, time.Time) error { return nil }

// ---- authorization codes, PKCE, OIDC ----

// CreateAuthorizeCodeSession stores the request of a code.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.put(ctx, keyCode+sig, r, s.codeTTL)
}

// GetAuthorizeCodeSession returns the request of a code; a used code answers
// fosite.ErrInvalidatedAuthorizeCode with its request, so fosite revokes
// what the first use issued.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, keyCode+sig, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession marks a code used.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	n, err := deactivate.Run(ctx, s.rdb, []string{keyCode + sig}).Int()
	if err != nil {
		return fmt.Errorf("invalidate code: %w", err)
	}
	if n == 0 {
		return fosite.ErrNotFound
	}
	return nil
}

// CreatePKCERequestSession stores the PKCE request of a code.
func (s *Store) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.put(ctx, keyPKCE+sig, r, s.codeTTL)
}

// GetPKCERequestSession returns the PKCE request of a code.
func (s *Store) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, _, err := s.get(ctx, keyPKCE+sig, session)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeletePKCERequestSession forgets the PKCE request of a code.
func (s *Store) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.rdb.Del(ctx, keyPKCE+sig).Err()
}

// CreateOpenIDConnectSession stores the OIDC request of a code.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.put(ctx, keyOIDC+code, r, s.codeTTL)
}

// GetOpenIDConnectSession returns the OIDC request of a code.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) (fosite.Requester, error) {
	r, _, err := s.get(ctx, keyOIDC+code, req.GetSession())
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteOpenIDConnectSession forgets the OIDC request of a code.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.rdb.Del(ctx, keyOIDC+code).Err()
}

// ---- access and refresh tokens ----

// CreateAccessTokenSession stores the state of an access token and indexes
// it under its grant, in one round trip.
func (s *Store) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	b, err := encodeRequest(r)
	if err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, keyAccess+sig, b, s.accessTTL)
	pipe.SAdd(ctx, keyReqAT+r.GetID(), sig)
	pipe.Expire(ctx, keyReqAT+r.GetID(), s.refTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store access token state: %w", err)
	}
	return nil
}

func (s *Store) index(ctx context.Context, key, sig string, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	pipe.SAdd(ctx, key, sig)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("index oauth2 token: %w", err)
	}
	return nil
}

// GetAccessTokenSession returns the state of an access token; a revoked or
// expired one is gone (fosite.ErrNotFound: introspection says inactive).
func (s *Store) GetAccessTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, _, err := s.get(ctx, keyAccess+sig, session)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteAccessTokenSession revokes one access token.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	r, _, err := s.get(ctx, keyAccess+sig, NewSession())
	if errors.Is(err, fosite.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, keyAccess+sig).Err(); err != nil {
		return fmt.Errorf("delete access token: %w", err)
	}
	if sess, ok := r.GetSession().(*Session); ok && sess.JTI != "" {
		s.revoked(ctx, sess.JTI, sess.GetSubject(), sess.GetExpiresAt(fosite.AccessToken))
	}
	return nil
}

// CreateRefreshTokenSession stores the state of a refresh token.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	if err := s.put(ctx, keyRefresh+sig, r, s.refTTL); err != nil {
		return err
	}
	return s.index(ctx, keyReqRT+r.GetID(), sig, s.refTTL)
}

// GetRefreshTokenSession returns the state of a refresh token; one already
// rotated away answers fosite.ErrInactiveToken with its request, so fosite
// treats its use as reuse and revokes the whole grant.
func (s *Store) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, keyRefresh+sig, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// DeleteRefreshTokenSession forgets a refresh token.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.rdb.Del(ctx, keyRefresh+sig).Err()
}

// RotateRefreshToken retires the refresh tokens and access tokens of a
// grant before the new pair is stored (rotation): the old refresh token
// stays, inactive, so that presenting it again is detected as reuse.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, _ string) error {
	if err := s.RevokeRefreshToken(ctx, requestID); err != nil {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// RevokeRefreshToken makes every refresh token of a grant inactive.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	sigs, err := s.rdb.SMembers(ctx, keyReqRT+requestID).Result()
	if err != nil {
		return fmt.Errorf("read refresh tokens of a grant: %w", err)
	}
	for _, sig := range sigs {
		if err := deactivate.Run(ctx, s.rdb, []string{keyRefresh + sig}).Err(); err != nil {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
	}
	return nil
}

// RevokeAccessToken revokes every access token of a grant.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	sigs, err := s.rdb.SMembers(ctx, keyReqAT+requestID).Result()
	if err != nil {
		return fmt.Errorf("read access tokens of a grant: %w", err)
	}
	for _, sig := range sigs {
		if err := s.DeleteAccessTokenSession(ctx, sig); err != nil {
			return err
		}
	}
	return s.rdb.Del(ctx, keyReqAT+requestID).Err()
}
