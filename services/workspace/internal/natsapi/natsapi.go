// Package natsapi serves the workspace service's request/reply methods
// (egs.rpc.v1.workspace.*): it decodes the rpc bodies, calls the use cases of
// package workspace and maps domain errors to rpc errors in one place.
//
// Only the policy method carries the caller (rpc.SetPolicyRequest) and checks
// its role here; like the workspace methods, the template and binding methods
// carry none, so the edge authorises them (libs/rpc defines no caller for them).
package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/wire"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

// Handlers holds the RPC handlers of the workspace service.
type Handlers struct {
	m *workspace.Manager
}

// New returns the handlers over m.
func New(m *workspace.Manager) *Handlers { return &Handlers{m: m} }

// Methods returns the methods to serve with rpc.Serve; each request gets timeout.
func (h *Handlers) Methods(log *slog.Logger, timeout time.Duration) []rpc.Method {
	return []rpc.Method{
		{Subject: events.RPCWorkspaceCreate, Handler: rpc.Handle(log, timeout, h.Create)},
		{Subject: events.RPCWorkspaceGet, Handler: rpc.Handle(log, timeout, h.Get)},
		{Subject: events.RPCWorkspaceList, Handler: rpc.Handle(log, timeout, h.List)},
		{Subject: events.RPCWorkspaceDelete, Handler: rpc.Handle(log, timeout, h.Delete)},
		{Subject: events.RPCWorkspacePolicy, Handler: rpc.Handle(log, timeout, h.SetPolicy)},
		{Subject: events.RPCTemplateCreate, Handler: rpc.Handle(log, timeout, h.CreateTemplate)},
		{Subject: events.RPCTemplateGet, Handler: rpc.Handle(log, timeout, h.GetTemplate)},
		{Subject: events.RPCTemplateList, Handler: rpc.Handle(log, timeout, h.ListTemplates)},
		{Subject: events.RPCTemplateUpdate, Handler: rpc.Handle(log, timeout, h.UpdateTemplate)},
		{Subject: events.RPCTemplateDelete, Handler: rpc.Handle(log, timeout, h.DeleteTemplate)},
		{Subject: events.RPCBindingCreate, Handler: rpc.Handle(log, timeout, h.CreateBinding)},
		{Subject: events.RPCBindingGet, Handler: rpc.Handle(log, timeout, h.GetBinding)},
		{Subject: events.RPCBindingList, Handler: rpc.Handle(log, timeout, h.ListBindings)},
		{Subject: events.RPCBindingUpdate, Handler: rpc.Handle(log, timeout, h.UpdateBinding)},
		{Subject: events.RPCBindingDelete, Handler: rpc.Handle(log, timeout, h.DeleteBinding)},
	}
}

// Create creates a workspace: UNPROCESSABLE_ENTITY for an invalid request,
// CONFLICT if the name is taken.
func (h *Handlers) Create(ctx context.Context, req rpc.CreateWorkspaceRequest) (rpc.Workspace, error) {
	ws, err := h.m.Create(ctx, workspace.Spec{
		Name:       req.Name,
		Clusters:   req.Clusters,
		Namespaces: req.Namespaces,
		Username:   req.Username,
		Email:      req.Email,
	})
	if err != nil {
		return rpc.Workspace{}, toRPC(err, req.Name)
	}
	return wire.Workspace(ws), nil
}

// Get returns one workspace: NOT_FOUND if there is none.
func (h *Handlers) Get(ctx context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
	ws, err := h.m.Get(ctx, req.Name)
	if err != nil {
		return rpc.Workspace{}, toRPC(err, req.Name)
	}
	return wire.Workspace(ws), nil
}

// List returns the workspaces sorted by name, only req.Scope when set.
func (h *Handlers) List(ctx context.Context, req rpc.ListWorkspacesRequest) (rpc.WorkspaceList, error) {
	all, err := h.m.List(ctx, req.Scope)
	if err != nil {
		return rpc.WorkspaceList{}, toRPC(err, req.Scope)
	}
	out := rpc.WorkspaceList{Workspaces: make([]rpc.Workspace, 0, len(all))}
	for _, ws := range all {
		out.Workspaces = append(out.Workspaces, wire.Workspace(ws))
	}
	return out, nil
}

// Delete deletes a workspace: NOT_FOUND if there is none.
func (h *Handlers) Delete(ctx context.Context, req rpc.WorkspaceRef) (rpc.Empty, error) {
	if err := h.m.Delete(ctx, req.Name); err != nil {
		return rpc.Empty{}, toRPC(err, req.Name)
	}
	return rpc.Empty{}, nil
}

// toRPC maps a domain error to the error clients see; anything else stays
// internal (rpc.Handle logs it and answers a generic INTERNAL).
func toRPC(err error, name string) error {
	var ve *workspace.ValidationError
	switch {
	case errors.As(err, &ve):
		return &rpc.Error{Code: rpc.Invalid, Message: ve.Error()}
	case errors.Is(err, workspace.ErrExists):
		return &rpc.Error{Code: rpc.Conflict, Message: "Slice Workspace already exists"}
	case errors.Is(err, workspace.ErrNotFound):
		return rpc.Errorf(rpc.NotFound, "workspace %q not found", name)
	case errors.Is(err, workspace.ErrTemplateNotFound):
		return rpc.Errorf(rpc.NotFound, "GPR template %q not found", name)
	case errors.Is(err, workspace.ErrTemplateExists):
		return rpc.Errorf(rpc.Conflict, "GPR template %q already exists", name)
	case errors.Is(err, workspace.ErrTemplateInUse):
		return rpc.Errorf(rpc.Conflict, "GPR template %q is used by a template binding", name)
	case errors.Is(err, workspace.ErrBindingNotFound):
		return rpc.Errorf(rpc.NotFound, "template binding %q not found", name)
	case errors.Is(err, workspace.ErrBindingExists):
		return rpc.Errorf(rpc.Conflict, "template binding %q already exists", name)
	}
	return err
}
