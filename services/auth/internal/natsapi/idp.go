package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/idp"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// IdPHandlers holds the RPC handlers of upstream IdP logins.
type IdPHandlers struct {
	idp   *idp.Manager // nil: no providers
	users *users.Manager
	log   *slog.Logger
}

// NewIdPHandlers returns the handlers; m may be nil (no providers configured).
func NewIdPHandlers(m *idp.Manager, um *users.Manager, log *slog.Logger) *IdPHandlers {
	return &IdPHandlers{idp: m, users: um, log: log}
}

// Methods returns the methods to serve with rpc.Serve.
func (h *IdPHandlers) Methods(log *slog.Logger, timeout time.Duration) []rpc.Method {
	return []rpc.Method{
		{Subject: events.RPCAuthProviders, Handler: rpc.Handle(log, timeout, h.Providers)},
		{Subject: events.RPCAuthIdPStart, Handler: rpc.Handle(log, timeout, h.Start)},
		{Subject: events.RPCAuthIdPFinish, Handler: rpc.Handle(log, timeout, h.Finish)},
	}
}

// Providers lists the configured providers.
func (h *IdPHandlers) Providers(context.Context, rpc.Empty) ([]rpc.Provider, error) {
	if h.idp == nil {
		return []rpc.Provider{}, nil
	}
	return h.idp.Providers(), nil
}

// Start begins a login at a provider.
func (h *IdPHandlers) Start(ctx context.Context, req rpc.IdPStartRequest) (rpc.IdPStart, error) {
	if h.idp == nil {
		return rpc.IdPStart{}, rpc.Errorf(rpc.NotFound, "no identity provider is configured")
	}
	s, err := h.idp.Start(ctx, req.Provider)
	return s, idpError(err)
}

// Finish completes a login; success and failure are audited like every login.
func (h *IdPHandlers) Finish(ctx context.Context, req rpc.IdPFinishRequest) (rpc.Login, error) {
	if h.idp == nil {
		return rpc.Login{}, rpc.Errorf(rpc.NotFound, "no identity provider is configured")
	}
	u, provider, err := h.idp.Finish(ctx, req)
	audit := events.AuthAudit{User: u.Username, Method: rpc.LoginIdPPrefix + provider, Remote: req.Remote}
	if err != nil {
		rerr := idpError(err)
		audit.Reason = rerr.Error()
		if rpc.CodeOf(rerr) == rpc.Internal {
			audit.Reason = "internal error"
		}
		if aerr := h.users.Audit(ctx, events.AuthFailed, audit); aerr != nil {
			h.log.WarnContext(ctx, "audit failed idp login", logkey.Err, aerr)
		}
		return rpc.Login{}, rerr
	}
	if err := h.users.Audit(ctx, events.AuthSucceeded, audit); err != nil {
		return rpc.Login{}, err
	}
	return rpc.Login{Method: rpc.LoginIdPPrefix + provider, User: u}, nil
}

func idpError(err error) error {
	var le *idp.ErrLogin
	if errors.As(err, &le) {
		return &rpc.Error{Code: rpc.Unauthenticated, Message: le.Error()}
	}
	return userError(err)
}
