// Package wire converts between the domain types of package workspace and
// their rpc wire shapes (libs/rpc), which are also the values of the KV
// buckets and the payload of the policy-updated event.
package wire

import (
	"fmt"

	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

// Workspace converts a workspace; its slices are never nil.
func Workspace(ws workspace.Workspace) rpc.Workspace {
	clusters := ws.Clusters
	if clusters == nil {
		clusters = []string{}
	}
	namespaces := ws.Namespaces
	if namespaces == nil {
		namespaces = []string{}
	}
	return rpc.Workspace{Name: ws.Name, Clusters: clusters, Namespaces: namespaces, Username: ws.Username,
		Email: ws.Email, CreatedAt: ws.CreatedAt, Policy: PolicyToRPC(ws.Policy)}
}

// PolicyToRPC converts a policy to its wire shape; AllowedShapes is never nil.
func PolicyToRPC(p workspace.Policy) rpc.Policy {
	shapes := p.AllowedShapes
	if shapes == nil {
		shapes = []string{}
	}
	return rpc.Policy{AllowedShapes: shapes, MaxGPUsPerGPR: p.MaxGPUsPerGPR, MaxMemoryPerGPU: p.MaxMemoryPerGPU,
		MaxQueuedGPRs: p.MaxQueuedGPRs, MaxExitDuration: p.MaxExitDuration, MinPriority: p.MinPriority,
		MaxPriority: p.MaxPriority, AutoEviction: p.AutoEviction, RequeueOnFailure: p.RequeueOnFailure}
}

// PolicyFromRPC converts a wire policy to the domain's.
func PolicyFromRPC(p rpc.Policy) workspace.Policy {
	return workspace.Policy{AllowedShapes: p.AllowedShapes, MaxGPUsPerGPR: p.MaxGPUsPerGPR,
		MaxMemoryPerGPU: p.MaxMemoryPerGPU, MaxQueuedGPRs: p.MaxQueuedGPRs, MaxExitDuration: p.MaxExitDuration,
		MinPriority: p.MinPriority, MaxPriority: p.MaxPriority, AutoEviction: p.AutoEviction,
		RequeueOnFailure: p.RequeueOnFailure}
}

// TemplateToRPC converts a template to its wire shape, durations as D8 writes them.
func TemplateToRPC(t workspace.Template) rpc.Template {
	return rpc.Template{
		Name:                t.Name,
		ClusterName:         t.Cluster,
		GPUShape:            t.GPUShape,
		InstanceType:        t.InstanceType,
		ExitDuration:        workspace.FormatDuration(t.ExitDuration),
		NumberOfGPUs:        t.GPUsPerNode,
		NumberOfGPUNodes:    t.Nodes,
		Priority:            t.Priority,
		MemoryPerGPU:        t.MemoryPerGPU,
		EnforceIdleTimeOut:  t.EnforceIdleTimeout,
		IdleTimeOutDuration: workspace.FormatDuration(t.IdleTimeout),
		EnableEviction:      t.EnableEviction,
		RequeueOnFailure:    t.RequeueOnFailure,
	}
}

// TemplateFromRPC rebuilds a stored template (its durations were written by
// TemplateToRPC, so they parse).
func TemplateFromRPC(r rpc.Template) (workspace.Template, error) {
	t := workspace.Template{
		Name: r.Name, Cluster: r.ClusterName, GPUShape: r.GPUShape, InstanceType: r.InstanceType,
		GPUsPerNode: r.NumberOfGPUs, Nodes: r.NumberOfGPUNodes, Priority: r.Priority, MemoryPerGPU: r.MemoryPerGPU,
		EnforceIdleTimeout: r.EnforceIdleTimeOut, EnableEviction: r.EnableEviction, RequeueOnFailure: r.RequeueOnFailure,
	}
	var err error
	if t.ExitDuration, err = workspace.ParseDuration(r.ExitDuration); err != nil {
		return workspace.Template{}, fmt.Errorf("decode template %s: %w", r.Name, err)
	}
	if r.IdleTimeOutDuration != "" {
		if t.IdleTimeout, err = workspace.ParseDuration(r.IdleTimeOutDuration); err != nil {
			return workspace.Template{}, fmt.Errorf("decode template %s: %w", r.Name, err)
		}
	}
	return t, nil
}

// BindingToRPC converts a binding to its wire shape; slices are never nil.
func BindingToRPC(b workspace.Binding) rpc.Binding {
	out := rpc.Binding{Name: b.Workspace, EnableAutoGPR: b.EnableAutoGPR, Clusters: make([]rpc.BindingCluster, 0, len(b.Clusters))}
	for _, c := range b.Clusters {
		out.Clusters = append(out.Clusters, rpc.BindingCluster{ClusterName: c.Cluster, DefaultTemplateName: c.DefaultTemplate,
			Templates: append([]string{}, c.Templates...)})
	}
	return out
}

// BindingFromRPC converts a wire binding to the domain's.
func BindingFromRPC(r rpc.Binding) workspace.Binding {
	b := workspace.Binding{Workspace: r.Name, EnableAutoGPR: r.EnableAutoGPR, Clusters: make([]workspace.BindingCluster, 0, len(r.Clusters))}
	for _, c := range r.Clusters {
		b.Clusters = append(b.Clusters, workspace.BindingCluster{Cluster: c.ClusterName, DefaultTemplate: c.DefaultTemplateName,
			Templates: append([]string{}, c.Templates...)})
	}
	return b
}
