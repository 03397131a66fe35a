// Package natsapi holds the auth service's inbound NATS handlers: the
// request/reply methods (egs.rpc.v1.auth.*), which decode the rpc bodies,
// call the use cases of package apikey, issue tokens, and map domain errors
// to rpc errors in one place; and the handler of workspace deletions
// (WorkspaceDeleted), which deletes the deleted workspace's keys. Replies
// never carry a stored hash, and a secret only once, in the reply that
// created it.
package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/apikey"
	"github.com/open-egs/egs/services/auth/internal/signing"
)

// The messages of the exchange errors, as the EGS contract words them (§2.1).
const (
	MsgInvalidKey      = "Api Key Configuration is invalid. Request a new API-key or contact administrator"
	MsgExpired         = "Api Key has expired"
	MsgUnauthenticated = "Unauthenticated"
)

// TokenSigner issues access tokens and publishes the keys that verify them
// (a *signing.Signer or a *signing.Keyring).
type TokenSigner interface {
	Issue(subject, role, workspace string, now time.Time) (string, time.Time, error)
	JWKS() rpc.JWKS
}

var _ TokenSigner = (*signing.Keyring)(nil)

// Handlers holds the RPC handlers of the auth service.
type Handlers struct {
	m      *apikey.Manager
	signer TokenSigner
	now    func() time.Time
}

// New returns the handlers; now is the clock of token issue times.
func New(m *apikey.Manager, signer TokenSigner, now func() time.Time) *Handlers {
	if now == nil {
		now = time.Now
	}
	return &Handlers{m: m, signer: signer, now: now}
}

// Methods returns the methods to serve with rpc.Serve; each request gets timeout.
func (h *Handlers) Methods(log *slog.Logger, timeout time.Duration) []rpc.Method {
	return []rpc.Method{
		{Subject: events.RPCAuthExchange, Handler: rpc.Handle(log, timeout, h.Exchange)},
		{Subject: events.RPCAuthKeyCreate, Handler: rpc.Handle(log, timeout, h.CreateKey)},
		{Subject: events.RPCAuthKeyDelete, Handler: rpc.Handle(log, timeout, h.DeleteKey)},
		{Subject: events.RPCAuthKeyList, Handler: rpc.Handle(log, timeout, h.ListKeys)},
		{Subject: events.RPCAuthJWKS, Handler: rpc.Handle(log, timeout, h.JWKS)},
	}
}

// Exchange trades an API key for an access token: BAD_REQUEST for no key,
// UNAUTHENTICATED for an unknown or deleted one, API_KEY_EXPIRED past its
// validity day.
func (h *Handlers) Exchange(ctx context.Context, req rpc.ExchangeRequest) (rpc.ExchangeReply, error) {
	k, err := h.m.Authenticate(ctx, req.APIKey)
	if err != nil {
		return rpc.ExchangeReply{}, toRPC(err, "")
	}
	ws := ""
	if k.Role.BoundToWorkspace() {
		ws = k.Workspace
	}
	raw, exp, err := h.signer.Issue(k.ID, string(k.Role), ws, h.now())
	if err != nil {
		return rpc.ExchangeReply{}, err
	}
	return rpc.ExchangeReply{Token: raw, ExpiresAt: exp}, nil
}

// CreateKey makes a key and returns its secret, once.
func (h *Handlers) CreateKey(ctx context.Context, req rpc.CreateKeyRequest) (rpc.CreateKeyReply, error) {
	secret, k, err := h.m.Create(ctx, apikey.Spec{Name: req.Name, UserName: req.UserName,
		Description: req.Description, Role: req.Role, Validity: req.Validity, Workspace: req.Workspace})
	if err != nil {
		return rpc.CreateKeyReply{}, toRPC(err, req.Workspace)
	}
	return rpc.CreateKeyReply{APIKey: secret, KeyID: k.ID}, nil
}

// DeleteKey deletes the key named by its secret or id: NOT_FOUND if neither matches.
func (h *Handlers) DeleteKey(ctx context.Context, req rpc.DeleteKeyRequest) (rpc.Empty, error) {
	if err := h.m.Delete(ctx, req.APIKey); err != nil {
		return rpc.Empty{}, toRPC(err, "")
	}
	return rpc.Empty{}, nil
}

// ListKeys lists keys (of one workspace when set: NOT_FOUND if it does not exist).
func (h *Handlers) ListKeys(ctx context.Context, req rpc.ListKeysRequest) (rpc.KeyList, error) {
	keys, err := h.m.List(ctx, req.Workspace)
	if err != nil {
		return rpc.KeyList{}, toRPC(err, req.Workspace)
	}
	out := rpc.KeyList{Keys: make([]rpc.KeyInfo, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, rpc.KeyInfo{KeyID: k.ID, Name: k.Name, Role: string(k.Role), UserName: k.UserName,
			Workspace: k.Workspace, Validity: k.Validity, Description: k.Description})
	}
	return out, nil
}

// JWKS returns the public keys that verify access tokens.
func (h *Handlers) JWKS(context.Context, rpc.Empty) (rpc.JWKS, error) {
	return h.signer.JWKS(), nil
}

// toRPC maps a domain error to the error clients see; anything else stays
// internal (rpc.Handle logs it and answers a generic INTERNAL).
func toRPC(err error, workspace string) error {
	var ve *apikey.ValidationError
	switch {
	case errors.As(err, &ve):
		return &rpc.Error{Code: rpc.Invalid, Message: ve.Error()}
	case errors.Is(err, apikey.ErrNoKey):
		return &rpc.Error{Code: rpc.BadRequest, Message: MsgInvalidKey}
	case errors.Is(err, apikey.ErrUnauthenticated):
		return &rpc.Error{Code: rpc.Unauthenticated, Message: MsgUnauthenticated}
	case errors.Is(err, apikey.ErrExpired):
		return &rpc.Error{Code: rpc.KeyExpired, Message: MsgExpired}
	case errors.Is(err, apikey.ErrWorkspaceNotFound):
		return rpc.Errorf(rpc.NotFound, "workspace %q not found", workspace)
	case errors.Is(err, apikey.ErrNameTaken):
		return &rpc.Error{Code: rpc.Conflict, Message: "an API key with this name already exists"}
	case errors.Is(err, apikey.ErrNotFound):
		return &rpc.Error{Code: rpc.NotFound, Message: "API key not found"}
	}
	return err
}
