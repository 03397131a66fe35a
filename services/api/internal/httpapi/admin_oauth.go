package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// registerAdminOAuth adds the admin routes of OAuth2 clients and signing
// keys (access Global).
func (s *Server) registerAdminOAuth(v1 *echo.Group) {
	g := v1.Group("/admin", s.require(Global))
	g.POST("/oauth-clients", s.adminCreateClient)
	g.GET("/oauth-clients", s.adminListClients)
	g.DELETE("/oauth-clients/:id", s.adminDeleteClient)
	g.POST("/signing-keys/rotate", s.adminRotateKey)
	g.DELETE("/signing-keys/:kid", s.adminRevokeKey)
}

// ClientBody is the body of POST /api/v1/admin/oauth-clients.
type ClientBody struct {
	Name         *string  `json:"name"`
	RedirectURIs []string `json:"redirectUris"`
	GrantTypes   []string `json:"grantTypes"`
	Scopes       []string `json:"scopes"`
	Public       *bool    `json:"public"`
	Role         *string  `json:"role"`
	Workspace    *string  `json:"workspace"`
}

func (s *Server) adminCreateClient(c echo.Context) error {
	var b ClientBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	spec := rpc.OAuthClientSpec{Actor: actor(c), Name: egsStr(b.Name), RedirectURIs: b.RedirectURIs,
		GrantTypes: b.GrantTypes, Scopes: b.Scopes, Role: egsStr(b.Role), Workspace: egsStr(b.Workspace)}
	if b.Public != nil {
		spec.Public = *b.Public
	}
	out, err := call[rpc.OAuthClientCreated](c, s, events.RPCAuthClientCreate, spec)
	if err != nil {
		return err
	}
	return created(c, out)
}

func (s *Server) adminListClients(c echo.Context) error {
	l, err := call[rpc.OAuthClientList](c, s, events.RPCAuthClientList, rpc.Empty{})
	if err != nil {
		return err
	}
	if l.Clients == nil {
		l.Clients = []rpc.OAuthClient{}
	}
	return ok(c, l.Clients)
}

func (s *Server) adminDeleteClient(c echo.Context) error {
	ref := rpc.OAuthClientRef{Actor: actor(c), ID: c.Param("id")}
	if _, err := call[rpc.Empty](c, s, events.RPCAuthClientDelete, ref); err != nil {
		return err
	}
	s.auth.Revoke(ref.ID) // this replica at once; the others on the event
	return ok(c, empty)
}

func (s *Server) adminRotateKey(c echo.Context) error {
	k, err := call[rpc.SigningKeyRef](c, s, events.RPCAuthKeyRotate, rpc.SigningKeyRef{Actor: actor(c)})
	if err != nil {
		return err
	}
	_ = s.auth.ForceRefresh(c.Request().Context())
	return ok(c, map[string]string{"kid": k.Kid, "retiredKid": k.OldKid})
}

func (s *Server) adminRevokeKey(c echo.Context) error {
	if _, err := call[rpc.Empty](c, s, events.RPCAuthKeyRevoke, rpc.SigningKeyRef{Actor: actor(c), Kid: c.Param("kid")}); err != nil {
		return err
	}
	_ = s.auth.ForceRefresh(c.Request().Context())
	return ok(c, empty)
}
