package httpapi

import (
	"slices"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
)

// decode reads and decodes the body into v (see egs.Decode).
func (s *Server) decode(c echo.Context, v any) error {
	b, err := s.body(c)
	if err != nil {
		return err
	}
	return egs.Decode(b, v)
}

// empty is the data of calls whose result clients ignore or need as {}.
var empty = struct{}{}

// ---- api keys (§3) ----

func (s *Server) createKey(c echo.Context) error {
	var b egs.CreateKeyBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Request(s.now())
	if err != nil {
		return err
	}
	if req.Workspace != "" {
		if err := s.workspaceExists(c, req.Workspace); err != nil {
			return err
		}
	}
	rep, err := call[rpc.CreateKeyReply](c, s, events.RPCAuthKeyCreate, req)
	if err != nil {
		return err
	}
	return ok(c, egs.KeyCreated{APIKey: rep.APIKey, KeyID: rep.KeyID})
}

func (s *Server) deleteKey(c echo.Context) error {
	var b egs.KeyRefBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	key, err := b.Key()
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCAuthKeyDelete, rpc.DeleteKeyRequest{APIKey: key}); err != nil {
		return err
	}
	return ok(c, empty)
}

func (s *Server) listKeys(c echo.Context) error {
	ws := c.QueryParam("workspaceName")
	if ws != "" {
		if _, err := egs.WorkspaceName("workspaceName", ws); err != nil {
			return err
		}
		if err := s.workspaceExists(c, ws); err != nil {
			return err
		}
	}
	l, err := call[rpc.KeyList](c, s, events.RPCAuthKeyList, rpc.ListKeysRequest{Workspace: ws})
	if err != nil {
		return err
	}
	return ok(c, egs.FromKeyList(l))
}

// workspaceExists answers NOT_FOUND (from the workspace service) for an
// unknown workspace; the auth service does not know workspaces.
func (s *Server) workspaceExists(c echo.Context, ws string) error {
	_, err := call[rpc.Workspace](c, s, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: ws})
	return err
}

// ---- slice workspaces (§4) ----

func (s *Server) createWorkspace(c echo.Context) error {
	var b egs.CreateWorkspaceBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Request()
	if err != nil {
		return err
	}
	if _, err := call[rpc.Workspace](c, s, events.RPCWorkspaceCreate, req); err != nil {
		return err
	}
	return ok(c, egs.WorkspaceCreated{WorkspaceName: req.Name})
}

func (s *Server) deleteWorkspace(c echo.Context) error {
	var b egs.WorkspaceRefBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	ws, err := b.Name()
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCWorkspaceDelete, rpc.WorkspaceRef{Name: ws}); err != nil {
		return err
	}
	return ok(c, empty)
}

// listWorkspaces lists every workspace for an Owner or admin and only its own
// for an Editor or Viewer.
func (s *Server) listWorkspaces(c echo.Context) error {
	caller := callerOf(c.Request().Context())
	l, err := call[rpc.WorkspaceList](c, s, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{Scope: scope(caller)})
	if err != nil {
		return err
	}
	if caller.Workspace != "" { // whatever the service did with Scope
		own := l.Workspaces[:0:0]
		for _, w := range l.Workspaces {
			if caller.Allows(w.Name) {
				own = append(own, w)
			}
		}
		l.Workspaces = own
	}
	return ok(c, egs.FromWorkspaceList(l))
}

func (s *Server) kubeConfig(c echo.Context) error {
	var b egs.KubeConfigBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	ws, cluster, err := b.Names()
	if err != nil {
		return err
	}
	caller := callerOf(c.Request().Context())
	if err := allowWorkspace(caller, ws); err != nil {
		return err
	}
	// §4.4: 404 for an unknown workspace or a cluster outside it, decided
	// here so the provisioner only sees requests that name a real pair.
	w, err := call[rpc.Workspace](c, s, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: ws})
	if err != nil {
		return err
	}
	switch {
	case cluster == "" && len(w.Clusters) == 0:
		return rpc.Errorf(rpc.NotFound, "workspace %s has no cluster", ws)
	case cluster == "": // older callers: the workspace's first cluster (D6)
		cluster = w.Clusters[0]
	case !slices.Contains(w.Clusters, cluster):
		return rpc.Errorf(rpc.NotFound, "cluster %s is not in workspace %s", cluster, ws)
	}
	kc, err := call[rpc.KubeConfig](c, s, events.RPCKubeConfig, rpc.KubeConfigRequest{Caller: caller, Workspace: ws, Cluster: cluster})
	if err != nil {
		return err
	}
	return ok(c, egs.KubeConfig{KubeConfig: kc.KubeConfig})
}

// ---- inventory (§5) ----

func (s *Server) inventory(c echo.Context) error {
	var (
		inv    rpc.Inventory
		allocs rpc.AllocationList
	)
	var g errgroup.Group
	g.Go(func() (err error) {
		inv, err = call[rpc.Inventory](c, s, events.RPCInventoryList, rpc.InventoryRequest{})
		return err
	})
	g.Go(func() (err error) {
		allocs, err = call[rpc.AllocationList](c, s, events.RPCGPRAllocations, rpc.Empty{})
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	out := egs.BuildInventory(inv.Nodes, allocs.Allocations)
	if caller := callerOf(c.Request().Context()); caller.Workspace != "" {
		// Every role reads the inventory (D15), but a caller bound to a
		// workspace sees only its own workspace's GPRs in the allocations;
		// counts and node states still reflect every workspace.
		out = out.OnlyWorkspaces(caller.Allows)
	}
	return ok(c, out)
}

func (s *Server) workspaceInventory(c echo.Context) error {
	ws, err := egs.WorkspaceName("sliceName", c.QueryParam("sliceName"))
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
	if len(w.Clusters) == 0 {
		return ok(c, egs.BuildWorkspaceInventory(nil, nil))
	}
	inv, err := call[rpc.Inventory](c, s, events.RPCInventoryList, rpc.InventoryRequest{Clusters: w.Clusters})
	if err != nil {
		return err
	}
	return ok(c, egs.BuildWorkspaceInventory(w.Clusters, inv.Nodes))
}

// ---- GPRs (§6) ----

func (s *Server) createGPR(c echo.Context) error {
	var b egs.CreateGPRBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	spec, err := b.Spec()
	if err != nil {
		return err
	}
	caller := callerOf(c.Request().Context())
	if err := allowWorkspace(caller, spec.Workspace); err != nil {
		return err
	}
	rep, err := call[rpc.CreateGPRReply](c, s, events.RPCGPRCreate, rpc.CreateGPRRequest{Caller: caller, Spec: spec})
	if err != nil {
		return err
	}
	return ok(c, egs.GPRID{GPRID: rep.GPRID})
}

func (s *Server) getGPR(c echo.Context) error {
	id := c.QueryParam("gprId")
	if id == "" {
		return rpc.Errorf(rpc.Invalid, "%q is required", "gprId")
	}
	g, err := call[rpc.GPR](c, s, events.RPCGPRGet, rpc.GPRRef{Caller: callerOf(c.Request().Context()), GPRID: id})
	if err != nil {
		return err
	}
	return ok(c, egs.FromGPR(g))
}

func (s *Server) listGPRs(c echo.Context) error {
	ws, err := egs.WorkspaceName("sliceName", c.QueryParam("sliceName"))
	if err != nil {
		return err
	}
	caller := callerOf(c.Request().Context())
	if err := allowWorkspace(caller, ws); err != nil {
		return err
	}
	l, err := call[rpc.GPRList](c, s, events.RPCGPRList, rpc.ListGPRsRequest{Caller: caller, Workspace: ws})
	if err != nil {
		return err
	}
	return ok(c, egs.FromGPRList(l))
}

func (s *Server) updateGPR(c echo.Context) error {
	var b egs.UpdateGPRBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Request(callerOf(c.Request().Context()))
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCGPRUpdate, req); err != nil {
		return err
	}
	return ok(c, empty)
}

func (s *Server) deleteGPR(c echo.Context) error {
	var b egs.GPRRefBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	id, err := b.ID()
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCGPRDelete, rpc.GPRRef{Caller: callerOf(c.Request().Context()), GPRID: id}); err != nil {
		return err
	}
	return ok(c, empty)
}

func (s *Server) waitTime(c echo.Context) error {
	var b egs.CreateGPRBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	spec, err := b.WaitTimeSpec()
	if err != nil {
		return err
	}
	caller := callerOf(c.Request().Context())
	if err := allowWorkspace(caller, spec.Workspace); err != nil {
		return err
	}
	w, err := call[rpc.WaitTime](c, s, events.RPCGPRWaitTime, rpc.CreateGPRRequest{Caller: caller, Spec: spec})
	if err != nil {
		return err
	}
	return ok(c, egs.FromWaitTime(w))
}
