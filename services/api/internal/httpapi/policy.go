package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
)

// ---- workspace policies and GPR approval (our additions, outside the
// contract's paths; D17's /api/v1/workspace-policies stays unrouted) ----

// getPolicy answers any role in the workspace.
func (s *Server) getPolicy(c echo.Context) error {
	ws, err := egs.WorkspaceName("workspaceName", c.QueryParam("workspaceName"))
	if err != nil {
		return err
	}
	if err := allowWorkspace(callerOf(c.Request().Context()), ws); err != nil {
		return err
	}
	w, err := call[rpc.Workspace](c, s, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: ws})
	if err != nil {
		return err
	}
	return ok(c, egs.FromPolicy(w))
}

// setPolicy is for an Owner or the admin (the route's Manage access; the
// workspace service checks the caller again).
func (s *Server) setPolicy(c echo.Context) error {
	var b egs.PolicyBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Request(callerOf(c.Request().Context()))
	if err != nil {
		return err
	}
	w, err := call[rpc.Workspace](c, s, events.RPCWorkspacePolicy, req)
	if err != nil {
		return err
	}
	return ok(c, egs.FromPolicy(w))
}

// moveGPR moves a queued GPR one place up or down (Owners and the admin);
// the gpr-scheduler decides 404 and 409.
func (s *Server) moveGPR(c echo.Context) error {
	var b egs.MoveBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Request(callerOf(c.Request().Context()))
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCGPRMove, req); err != nil {
		return err
	}
	return ok(c, empty)
}

func (s *Server) approveGPR(c echo.Context) error { return s.decideGPR(c, events.RPCGPRApprove, false) }

func (s *Server) rejectGPR(c echo.Context) error { return s.decideGPR(c, events.RPCGPRReject, true) }

// decideGPR sends an approval or rejection to the gpr-scheduler, which owns
// the GPRs waiting for one; with no scheduler answering it is 503.
func (s *Server) decideGPR(c echo.Context, subject string, reject bool) error {
	var b egs.DecideBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Request(callerOf(c.Request().Context()), reject)
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, subject, req); err != nil {
		return err
	}
	return ok(c, empty)
}
