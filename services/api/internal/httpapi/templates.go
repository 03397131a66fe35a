package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
)

// ---- GPR templates (§7) ----
//
// Templates are global, not owned by a workspace, so every role reads them
// and only an Owner or the admin writes them (D15 names templates among an
// Editor's rights "in its one workspace", which a global template is not).

func (s *Server) createTemplate(c echo.Context) error {
	var b egs.TemplateBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	t, err := b.Template()
	if err != nil {
		return err
	}
	got, err := call[rpc.Template](c, s, events.RPCTemplateCreate, t)
	if err != nil {
		return err
	}
	return ok(c, egs.TemplateCreated{GPRTemplateName: got.Name})
}

func (s *Server) getTemplate(c echo.Context) error {
	name, err := egs.TemplateName(c.QueryParam("gprTemplateName"))
	if err != nil {
		return err
	}
	t, err := call[rpc.Template](c, s, events.RPCTemplateGet, rpc.WorkspaceRef{Name: name})
	if err != nil {
		return err
	}
	return ok(c, egs.FromTemplate(t))
}

// listTemplates ignores the {} body clients send with this GET (§1.3).
func (s *Server) listTemplates(c echo.Context) error {
	l, err := call[[]rpc.Template](c, s, events.RPCTemplateList, rpc.Empty{})
	if err != nil {
		return err
	}
	return ok(c, egs.FromTemplates(l))
}

func (s *Server) updateTemplate(c echo.Context) error {
	var b egs.TemplateBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	t, err := b.Template()
	if err != nil {
		return err
	}
	if _, err := call[rpc.Template](c, s, events.RPCTemplateUpdate, t); err != nil {
		return err
	}
	return ok(c, empty)
}

func (s *Server) deleteTemplate(c echo.Context) error {
	var b egs.TemplateRefBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	name, err := b.Name()
	if err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCTemplateDelete, rpc.WorkspaceRef{Name: name}); err != nil {
		return err
	}
	return ok(c, empty)
}

// ---- GPR template bindings (§8) ----
//
// A binding belongs to its workspace: every role reads it, an Owner, the
// admin or the workspace's Editor writes it, and an Editor or Viewer of
// another workspace gets 403.

// createBinding reads the workspace first: 404 when unknown, and its first
// namespace is the response's namespace (D2).
func (s *Server) createBinding(c echo.Context) error {
	return s.writeBinding(c, events.RPCBindingCreate)
}

func (s *Server) updateBinding(c echo.Context) error {
	return s.writeBinding(c, events.RPCBindingUpdate)
}

func (s *Server) writeBinding(c echo.Context, subject string) error {
	var b egs.BindingBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req, err := b.Binding()
	if err != nil {
		return err
	}
	if err := allowWorkspace(callerOf(c.Request().Context()), req.Name); err != nil {
		return err
	}
	w, err := call[rpc.Workspace](c, s, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: req.Name})
	if err != nil {
		return err
	}
	got, err := call[rpc.Binding](c, s, subject, req)
	if err != nil {
		return err
	}
	return ok(c, egs.FromBindingWithNamespace(got, egs.FirstNamespace(w)))
}

func (s *Server) getBinding(c echo.Context) error {
	name, err := egs.WorkspaceName("gprTemplateBindingName", c.QueryParam("gprTemplateBindingName"))
	if err != nil {
		return err
	}
	if err := allowWorkspace(callerOf(c.Request().Context()), name); err != nil {
		return err
	}
	b, err := call[rpc.Binding](c, s, events.RPCBindingGet, rpc.WorkspaceRef{Name: name})
	if err != nil {
		return err
	}
	return ok(c, egs.FromBinding(b))
}

// listBindings shows an Editor or Viewer only its own workspace's binding,
// as the workspace list does; it ignores the {} body clients send (§1.3).
func (s *Server) listBindings(c echo.Context) error {
	caller := callerOf(c.Request().Context())
	bindings, err := call[[]rpc.Binding](c, s, events.RPCBindingList, rpc.Empty{})
	if err != nil {
		return err
	}
	wl, err := call[rpc.WorkspaceList](c, s, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{Scope: scope(caller)})
	if err != nil {
		return err
	}
	namespaces := make(map[string]string, len(wl.Workspaces))
	for _, w := range wl.Workspaces {
		namespaces[w.Name] = egs.FirstNamespace(w)
	}
	out := egs.BindingList{TemplateBindings: make([]egs.BindingWithNamespace, 0, len(bindings))}
	for _, b := range bindings {
		if !caller.Allows(b.Name) {
			continue
		}
		out.TemplateBindings = append(out.TemplateBindings, egs.FromBindingWithNamespace(b, namespaces[b.Name]))
	}
	return ok(c, out)
}

func (s *Server) deleteBinding(c echo.Context) error {
	var b egs.BindingRefBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	name, err := b.Name()
	if err != nil {
		return err
	}
	if err := allowWorkspace(callerOf(c.Request().Context()), name); err != nil {
		return err
	}
	if _, err := call[rpc.Empty](c, s, events.RPCBindingDelete, rpc.WorkspaceRef{Name: name}); err != nil {
		return err
	}
	return ok(c, empty)
}
