package natsapi

import (
	"context"

	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/wire"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

// Roles that may set a policy (D15: Owner and the admin token).
const (
	roleOwner = "Owner"
	roleAdmin = "admin"
)

// SetPolicy replaces a workspace's policy and returns the workspace:
// FORBIDDEN unless the caller is an Owner or the admin, NOT_FOUND for an
// unknown workspace, UNPROCESSABLE_ENTITY for an invalid policy.
func (h *Handlers) SetPolicy(ctx context.Context, req rpc.SetPolicyRequest) (rpc.Workspace, error) {
	if (req.Caller.Role != roleOwner && req.Caller.Role != roleAdmin) || req.Caller.Workspace != "" {
		return rpc.Workspace{}, rpc.Errorf(rpc.Forbidden, "only an Owner or the admin may set a workspace policy")
	}
	ws, err := h.m.SetPolicy(ctx, req.Workspace, wire.PolicyFromRPC(req.Policy))
	if err != nil {
		return rpc.Workspace{}, toRPC(err, req.Workspace)
	}
	return wire.Workspace(ws), nil
}

func templateSpec(t rpc.Template) workspace.TemplateSpec {
	return workspace.TemplateSpec{
		Name: t.Name, Cluster: t.ClusterName, GPUShape: t.GPUShape, InstanceType: t.InstanceType,
		ExitDuration: t.ExitDuration, GPUsPerNode: t.NumberOfGPUs, Nodes: t.NumberOfGPUNodes, Priority: t.Priority,
		MemoryPerGPU: t.MemoryPerGPU, EnforceIdleTimeout: t.EnforceIdleTimeOut, IdleTimeout: t.IdleTimeOutDuration,
		EnableEviction: t.EnableEviction, RequeueOnFailure: t.RequeueOnFailure,
	}
}

// CreateTemplate stores a template (body rpc.Template, reply the stored one,
// durations normalised): CONFLICT for a taken name, UNPROCESSABLE_ENTITY for
// an invalid one. IdleTimeOutDuration "" means not given.
func (h *Handlers) CreateTemplate(ctx context.Context, req rpc.Template) (rpc.Template, error) {
	t, err := h.m.CreateTemplate(ctx, templateSpec(req))
	if err != nil {
		return rpc.Template{}, toRPC(err, req.Name)
	}
	return wire.TemplateToRPC(t), nil
}

// GetTemplate returns a template (body {"name"}, as rpc.WorkspaceRef): NOT_FOUND if unknown.
func (h *Handlers) GetTemplate(ctx context.Context, req rpc.WorkspaceRef) (rpc.Template, error) {
	t, err := h.m.GetTemplate(ctx, req.Name)
	if err != nil {
		return rpc.Template{}, toRPC(err, req.Name)
	}
	return wire.TemplateToRPC(t), nil
}

// ListTemplates returns every template sorted by name, as a JSON array (never null).
func (h *Handlers) ListTemplates(ctx context.Context, _ rpc.Empty) ([]rpc.Template, error) {
	all, err := h.m.ListTemplates(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rpc.Template, 0, len(all))
	for _, t := range all {
		out = append(out, wire.TemplateToRPC(t))
	}
	return out, nil
}

// UpdateTemplate replaces a template: NOT_FOUND if unknown,
// UNPROCESSABLE_ENTITY if invalid. EnforceIdleTimeOut true with
// IdleTimeOutDuration "" keeps the stored duration (D10).
func (h *Handlers) UpdateTemplate(ctx context.Context, req rpc.Template) (rpc.Template, error) {
	t, err := h.m.UpdateTemplate(ctx, templateSpec(req))
	if err != nil {
		return rpc.Template{}, toRPC(err, req.Name)
	}
	return wire.TemplateToRPC(t), nil
}

// DeleteTemplate removes a template (body {"name"}): NOT_FOUND if unknown,
// CONFLICT while a binding refers to it.
func (h *Handlers) DeleteTemplate(ctx context.Context, req rpc.WorkspaceRef) (rpc.Empty, error) {
	if err := h.m.DeleteTemplate(ctx, req.Name); err != nil {
		return rpc.Empty{}, toRPC(err, req.Name)
	}
	return rpc.Empty{}, nil
}

// CreateBinding stores the binding of workspace req.Name: NOT_FOUND for an
// unknown workspace, CONFLICT if it has one, UNPROCESSABLE_ENTITY for a
// cluster outside the workspace or an unknown template.
func (h *Handlers) CreateBinding(ctx context.Context, req rpc.Binding) (rpc.Binding, error) {
	b, err := h.m.CreateBinding(ctx, wire.BindingFromRPC(req))
	if err != nil {
		return rpc.Binding{}, toRPC(err, req.Name)
	}
	return wire.BindingToRPC(b), nil
}

// GetBinding returns the binding of a workspace (body {"name"}): NOT_FOUND if none.
func (h *Handlers) GetBinding(ctx context.Context, req rpc.WorkspaceRef) (rpc.Binding, error) {
	b, err := h.m.GetBinding(ctx, req.Name)
	if err != nil {
		return rpc.Binding{}, toRPC(err, req.Name)
	}
	return wire.BindingToRPC(b), nil
}

// ListBindings returns every binding sorted by name, as a JSON array (never null).
func (h *Handlers) ListBindings(ctx context.Context, _ rpc.Empty) ([]rpc.Binding, error) {
	all, err := h.m.ListBindings(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rpc.Binding, 0, len(all))
	for _, b := range all {
		out = append(out, wire.BindingToRPC(b))
	}
	return out, nil
}

// UpdateBinding replaces the binding of workspace req.Name: NOT_FOUND for an
// unknown workspace or binding, UNPROCESSABLE_ENTITY as in CreateBinding.
func (h *Handlers) UpdateBinding(ctx context.Context, req rpc.Binding) (rpc.Binding, error) {
	b, err := h.m.UpdateBinding(ctx, wire.BindingFromRPC(req))
	if err != nil {
		return rpc.Binding{}, toRPC(err, req.Name)
	}
	return wire.BindingToRPC(b), nil
}

// DeleteBinding removes the binding of a workspace (body {"name"}): NOT_FOUND if none.
func (h *Handlers) DeleteBinding(ctx context.Context, req rpc.WorkspaceRef) (rpc.Empty, error) {
	if err := h.m.DeleteBinding(ctx, req.Name); err != nil {
		return rpc.Empty{}, toRPC(err, req.Name)
	}
	return rpc.Empty{}, nil
}
