package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/oauth"
	"github.com/open-egs/egs/services/auth/internal/signing"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// OAuthHandlers holds the RPC handlers of OAuth2 clients and signing keys.
type OAuthHandlers struct {
	clients *oauth.Clients
	keys    *signing.Keyring
	audit   users.Events
	now     func() time.Time
}

// NewOAuthHandlers returns the handlers; clients may be nil (no issuer:
// client methods answer UNAVAILABLE).
func NewOAuthHandlers(clients *oauth.Clients, keys *signing.Keyring, audit users.Events, now func() time.Time) *OAuthHandlers {
	return &OAuthHandlers{clients: clients, keys: keys, audit: audit, now: now}
}

// Methods returns the methods to serve with rpc.Serve.
func (h *OAuthHandlers) Methods(log *slog.Logger, timeout time.Duration) []rpc.Method {
	return []rpc.Method{
		{Subject: events.RPCAuthClientCreate, Handler: rpc.Handle(log, timeout, h.CreateClient)},
		{Subject: events.RPCAuthClientList, Handler: rpc.Handle(log, timeout, h.ListClients)},
		{Subject: events.RPCAuthClientDelete, Handler: rpc.Handle(log, timeout, h.DeleteClient)},
		{Subject: events.RPCAuthKeyRotate, Handler: rpc.Handle(log, timeout, h.RotateKey)},
		{Subject: events.RPCAuthKeyRevoke, Handler: rpc.Handle(log, timeout, h.RevokeKey)},
	}
}

var errNoIssuer = rpc.Errorf(rpc.Unavailable, "the OAuth2 issuer is not configured (no Redis)")

// CreateClient registers an OAuth2 client; its secret is in this reply only.
func (h *OAuthHandlers) CreateClient(ctx context.Context, req rpc.OAuthClientSpec) (rpc.OAuthClientCreated, error) {
	if h.clients == nil {
		return rpc.OAuthClientCreated{}, errNoIssuer
	}
	return h.clients.Create(ctx, req)
}

// ListClients lists the clients without secrets.
func (h *OAuthHandlers) ListClients(ctx context.Context, _ rpc.Empty) (rpc.OAuthClientList, error) {
	if h.clients == nil {
		return rpc.OAuthClientList{Clients: []rpc.OAuthClient{}}, nil
	}
	l, err := h.clients.List(ctx)
	return rpc.OAuthClientList{Clients: l}, err
}

// DeleteClient deletes a client; the edges refuse its tokens from then on.
func (h *OAuthHandlers) DeleteClient(ctx context.Context, req rpc.OAuthClientRef) (rpc.Empty, error) {
	if h.clients == nil {
		return rpc.Empty{}, errNoIssuer
	}
	err := h.clients.Delete(ctx, req.ID, req.Actor)
	if errors.Is(err, oauth.ErrClientNotFound) {
		return rpc.Empty{}, rpc.Errorf(rpc.NotFound, "OAuth2 client not found")
	}
	return rpc.Empty{}, err
}

// RotateKey makes a new signing key current; the old one keeps verifying
// the tokens it signed until they expire. The edges refresh their JWKS on
// the rotated event.
func (h *OAuthHandlers) RotateKey(ctx context.Context, req rpc.SigningKeyRef) (rpc.SigningKeyRef, error) {
	kid, old, err := h.keys.Rotate()
	if err != nil {
		return rpc.SigningKeyRef{}, err
	}
	err = h.audit.Publish(ctx, events.AuthFamilySigningKey, kid, events.AuthRotated, kid+".rotated",
		events.AuthAudit{Action: "signingkey.rotated", Actor: req.Actor, Target: kid, Detail: "retired=" + old, At: h.now().UTC()})
	return rpc.SigningKeyRef{Kid: kid, OldKid: old}, err
}

// RevokeKey drops a retired signing key from the JWKS at once: every token
// it signed stops verifying on every edge (they refresh on the event).
func (h *OAuthHandlers) RevokeKey(ctx context.Context, req rpc.SigningKeyRef) (rpc.Empty, error) {
	ok, err := h.keys.Revoke(req.Kid)
	if err != nil {
		return rpc.Empty{}, rpc.Errorf(rpc.Conflict, "%v", err)
	}
	if !ok {
		return rpc.Empty{}, rpc.Errorf(rpc.NotFound, "no retired signing key %q", req.Kid)
	}
	return rpc.Empty{}, h.audit.Publish(ctx, events.AuthFamilySigningKey, req.Kid, events.AuthRevoked, req.Kid+".revoked",
		events.AuthAudit{Action: "signingkey.revoked", Actor: req.Actor, Target: req.Kid, At: h.now().UTC()})
}
