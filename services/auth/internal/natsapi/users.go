package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/apikey"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// The messages of failed logins, as the portal session contract words them.
const (
	MsgTokenInvalid = "Invalid access token"
	MsgTokenExpired = "Access token expired"
	MsgTokenRevoked = "Access token revoked"
	MsgCodeInvalid  = "Login link is invalid or was already used"
	MsgCodeExpired  = "Login link expired"
)

// UserHandlers holds the RPC handlers of users, access tokens and logins.
type UserHandlers struct {
	users *users.Manager
	keys  *apikey.Manager
	log   *slog.Logger
}

// NewUserHandlers returns the handlers; keys authenticates Owner API keys
// used as portal logins.
func NewUserHandlers(u *users.Manager, keys *apikey.Manager, log *slog.Logger) *UserHandlers {
	return &UserHandlers{users: u, keys: keys, log: log}
}

// Methods returns the methods to serve with rpc.Serve; each request gets timeout.
func (h *UserHandlers) Methods(log *slog.Logger, timeout time.Duration) []rpc.Method {
	return []rpc.Method{
		{Subject: events.RPCAuthUserCreate, Handler: rpc.Handle(log, timeout, h.CreateUser)},
		{Subject: events.RPCAuthUserGet, Handler: rpc.Handle(log, timeout, h.GetUser)},
		{Subject: events.RPCAuthUserList, Handler: rpc.Handle(log, timeout, h.ListUsers)},
		{Subject: events.RPCAuthUserUpdate, Handler: rpc.Handle(log, timeout, h.UpdateUser)},
		{Subject: events.RPCAuthUserDelete, Handler: rpc.Handle(log, timeout, h.DeleteUser)},
		{Subject: events.RPCAuthTokenCreate, Handler: rpc.Handle(log, timeout, h.CreateToken)},
		{Subject: events.RPCAuthTokenList, Handler: rpc.Handle(log, timeout, h.ListTokens)},
		{Subject: events.RPCAuthTokenRevoke, Handler: rpc.Handle(log, timeout, h.RevokeToken)},
		{Subject: events.RPCAuthDirectCreate, Handler: rpc.Handle(log, timeout, h.CreateDirectLogin)},
		{Subject: events.RPCAuthLogin, Handler: rpc.Handle(log, timeout, h.Login)},
	}
}

// CreateUser registers a user.
func (h *UserHandlers) CreateUser(ctx context.Context, req rpc.UserSpec) (rpc.User, error) {
	u, err := h.users.Create(ctx, req, users.SourceAdmin)
	return u, userError(err)
}

// GetUser returns one user.
func (h *UserHandlers) GetUser(ctx context.Context, req rpc.UserRef) (rpc.User, error) {
	u, err := h.users.Get(ctx, req.Username)
	return u, userError(err)
}

// ListUsers lists every user.
func (h *UserHandlers) ListUsers(ctx context.Context, _ rpc.Empty) (rpc.UserList, error) {
	l, err := h.users.List(ctx)
	if err != nil {
		return rpc.UserList{}, userError(err)
	}
	return rpc.UserList{Users: l}, nil
}

// UpdateUser replaces a user's email, admin flag and workspaces.
func (h *UserHandlers) UpdateUser(ctx context.Context, req rpc.UserSpec) (rpc.User, error) {
	u, err := h.users.Update(ctx, req)
	return u, userError(err)
}

// DeleteUser deletes a user and its access tokens.
func (h *UserHandlers) DeleteUser(ctx context.Context, req rpc.UserRef) (rpc.Empty, error) {
	return rpc.Empty{}, userError(h.users.Delete(ctx, req.Username, req.Actor))
}

// CreateToken issues a user access token; its secret is in this reply only.
func (h *UserHandlers) CreateToken(ctx context.Context, req rpc.CreateAccessTokenRequest) (rpc.AccessTokenCreated, error) {
	secret, t, err := h.users.CreateToken(ctx, req.Username, req.Validity, req.Actor)
	if err != nil {
		return rpc.AccessTokenCreated{}, userError(err)
	}
	return rpc.AccessTokenCreated{ID: t.ID, Token: secret, ExpiresAt: t.ExpiresAt}, nil
}

// ListTokens lists a user's access tokens without secrets.
func (h *UserHandlers) ListTokens(ctx context.Context, req rpc.UserRef) (rpc.AccessTokenList, error) {
	ts, err := h.users.Tokens(ctx, req.Username)
	if err != nil {
		return rpc.AccessTokenList{}, userError(err)
	}
	out := rpc.AccessTokenList{Tokens: make([]rpc.AccessTokenInfo, 0, len(ts))}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, t.Info())
	}
	return out, nil
}

// RevokeToken revokes one access token of a user.
func (h *UserHandlers) RevokeToken(ctx context.Context, req rpc.AccessTokenRef) (rpc.Empty, error) {
	return rpc.Empty{}, userError(h.users.RevokeToken(ctx, req.Username, req.ID, req.Actor))
}

// CreateDirectLogin makes a single-use login code for a user.
func (h *UserHandlers) CreateDirectLogin(ctx context.Context, req rpc.DirectLoginRequest) (rpc.DirectLoginCreated, error) {
	code, c, err := h.users.CreateCode(ctx, req.Username, req.TTL, req.Actor)
	if err != nil {
		return rpc.DirectLoginCreated{}, userError(err)
	}
	return rpc.DirectLoginCreated{Code: code, ExpiresAt: c.ExpiresAt}, nil
}

// Login verifies a portal credential: a user access token, an Owner API
// key, or a direct login code. Every decision is audited
// (egs.auth.v1.login.<userId>.<succeeded|failed>); a failure answers
// UNAUTHENTICATED with the contract's message.
func (h *UserHandlers) Login(ctx context.Context, req rpc.LoginRequest) (rpc.Login, error) {
	var (
		l      rpc.Login
		err    error
		method string
	)
	switch {
	case req.Code != "" && req.Token == "":
		method = rpc.LoginDirect
		var u rpc.User
		if u, err = h.users.RedeemCode(ctx, req.Code); err == nil {
			l = rpc.Login{Method: method, User: u}
		}
	case req.Token != "" && req.Code == "" && users.IsAccessToken(req.Token):
		method = rpc.LoginAccessToken
		var (
			u rpc.User
			t users.AccessToken
		)
		u, t, err = h.users.AuthenticateToken(ctx, req.Token)
		if err == nil {
			l = rpc.Login{Method: method, Origin: t.ID, User: u, ExpiresAt: t.ExpiresAt}
		} else if t.Username != "" {
			l.User.Username = t.Username // for the audit only
		}
	case req.Token != "" && req.Code == "":
		method = rpc.LoginAPIToken
		l, err = h.ownerKeyLogin(ctx, req.Token)
	default:
		return rpc.Login{}, rpc.Errorf(rpc.BadRequest, "exactly one of token and code is required")
	}
	audit := events.AuthAudit{User: l.User.Username, Method: method, Target: l.Origin, Remote: req.Remote}
	if err != nil {
		rerr := loginError(err)
		audit.Reason = rerr.Error()
		if rpc.CodeOf(rerr) == rpc.Internal {
			audit.Reason = "internal error"
		}
		if aerr := h.users.Audit(ctx, events.AuthFailed, audit); aerr != nil {
			h.log.WarnContext(ctx, "audit failed login", logkey.Err, aerr)
		}
		return rpc.Login{}, rerr
	}
	if aerr := h.users.Audit(ctx, events.AuthSucceeded, audit); aerr != nil {
		// A login nobody can audit does not happen.
		return rpc.Login{}, aerr
	}
	return l, nil
}

// ownerKeyLogin accepts an Owner API key as a portal login; other keys are
// refused as invalid access tokens.
func (h *UserHandlers) ownerKeyLogin(ctx context.Context, secret string) (rpc.Login, error) {
	k, err := h.keys.Authenticate(ctx, secret)
	switch {
	case errors.Is(err, apikey.ErrExpired):
		return rpc.Login{}, users.ErrTokenExpired
	case errors.Is(err, apikey.ErrNoKey), errors.Is(err, apikey.ErrUnauthenticated):
		return rpc.Login{}, users.ErrTokenInvalid
	case err != nil:
		return rpc.Login{}, err
	case k.Role != apikey.Owner:
		return rpc.Login{}, users.ErrTokenInvalid
	}
	name := k.UserName
	if !users.ValidUsername(name) {
		name = k.Name
	}
	exp, _ := time.Parse(apikey.DateLayout, k.Validity)
	return rpc.Login{
		Method: rpc.LoginAPIToken, Origin: k.ID,
		User:      rpc.User{Username: name},
		Caller:    &rpc.Caller{Subject: k.ID, Role: string(apikey.Owner)},
		ExpiresAt: exp.AddDate(0, 0, 1),
	}, nil
}

// loginError maps a login failure to the contract's messages.
func loginError(err error) error {
	switch {
	case errors.Is(err, users.ErrTokenInvalid):
		return &rpc.Error{Code: rpc.Unauthenticated, Message: MsgTokenInvalid}
	case errors.Is(err, users.ErrTokenExpired):
		return &rpc.Error{Code: rpc.Unauthenticated, Message: MsgTokenExpired}
	case errors.Is(err, users.ErrTokenRevoked):
		return &rpc.Error{Code: rpc.Unauthenticated, Message: MsgTokenRevoked}
	case errors.Is(err, users.ErrCodeInvalid):
		return &rpc.Error{Code: rpc.Unauthenticated, Message: MsgCodeInvalid}
	case errors.Is(err, users.ErrCodeExpired):
		return &rpc.Error{Code: rpc.Unauthenticated, Message: MsgCodeExpired}
	}
	return err
}

// userError maps a user domain error to the error clients see.
func userError(err error) error {
	if err == nil {
		return nil
	}
	var ve *users.ValidationError
	switch {
	case errors.As(err, &ve):
		return &rpc.Error{Code: rpc.Invalid, Message: ve.Error()}
	case errors.Is(err, users.ErrNotFound):
		return &rpc.Error{Code: rpc.NotFound, Message: "user not found"}
	case errors.Is(err, users.ErrExists):
		return &rpc.Error{Code: rpc.Conflict, Message: "a user with this username already exists"}
	case errors.Is(err, users.ErrWorkspaceNotFound):
		return &rpc.Error{Code: rpc.NotFound, Message: err.Error()}
	case errors.Is(err, users.ErrTokenNotFound):
		return &rpc.Error{Code: rpc.NotFound, Message: "access token not found"}
	}
	return loginError(err)
}
