package workspace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// TemplateStore keeps GPR templates, key = template name. Implementations are
// safe for concurrent use.
type TemplateStore interface {
	// CreateTemplate stores t; ErrTemplateExists if the name is taken.
	CreateTemplate(ctx context.Context, t Template) error
	// GetTemplate returns a template and its revision; ErrTemplateNotFound if none.
	GetTemplate(ctx context.Context, name string) (Template, uint64, error)
	// ListTemplates returns every template, in no particular order.
	ListTemplates(ctx context.Context) ([]Template, error)
	// UpdateTemplate replaces the template at rev; ErrChanged if it moved on,
	// ErrTemplateNotFound if gone.
	UpdateTemplate(ctx context.Context, t Template, rev uint64) error
	// DeleteTemplate removes the template at rev; ErrChanged if it moved on.
	DeleteTemplate(ctx context.Context, name string, rev uint64) error
}

// BindingStore keeps template bindings, key = workspace name. Implementations
// are safe for concurrent use.
type BindingStore interface {
	// CreateBinding stores b; ErrBindingExists if the workspace has one.
	CreateBinding(ctx context.Context, b Binding) error
	// GetBinding returns a binding and its revision; ErrBindingNotFound if none.
	GetBinding(ctx context.Context, name string) (Binding, uint64, error)
	// ListBindings returns every binding, in no particular order.
	ListBindings(ctx context.Context) ([]Binding, error)
	// UpdateBinding replaces the binding at rev; ErrChanged if it moved on,
	// ErrBindingNotFound if gone.
	UpdateBinding(ctx context.Context, b Binding, rev uint64) error
	// DeleteBinding removes the binding at rev, or whatever is there when rev
	// is 0; ErrChanged if it moved on.
	DeleteBinding(ctx context.Context, name string, rev uint64) error
}

// casAttempts bounds the retries of a read-modify-write whose record moves
// under it.
const casAttempts = 3

// CreateTemplate validates spec and stores the template. Errors:
// *ValidationError, ErrTemplateExists, or an internal error.
func (m *Manager) CreateTemplate(ctx context.Context, spec TemplateSpec) (Template, error) {
	t, err := NewTemplate(spec, nil)
	if err != nil {
		return Template{}, err
	}
	if err := m.templates.CreateTemplate(ctx, t); err != nil {
		return Template{}, err
	}
	return t, nil
}

// GetTemplate returns the template called name, or ErrTemplateNotFound.
func (m *Manager) GetTemplate(ctx context.Context, name string) (Template, error) {
	if !ValidName(name) {
		return Template{}, ErrTemplateNotFound
	}
	t, _, err := m.templates.GetTemplate(ctx, name)
	return t, err
}

// ListTemplates returns every template sorted by name.
func (m *Manager) ListTemplates(ctx context.Context) ([]Template, error) {
	all, err := m.templates.ListTemplates(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b Template) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

// UpdateTemplate replaces the template named spec.Name (D10: enforcing the
// idle timeout without a duration keeps the stored one). Errors:
// ErrTemplateNotFound, *ValidationError, or an internal error.
func (m *Manager) UpdateTemplate(ctx context.Context, spec TemplateSpec) (Template, error) {
	if !ValidName(spec.Name) {
		return Template{}, ErrTemplateNotFound
	}
	for attempt := 1; ; attempt++ {
		old, rev, err := m.templates.GetTemplate(ctx, spec.Name)
		if err != nil {
			return Template{}, err
		}
		t, err := NewTemplate(spec, &old)
		if err != nil {
			return Template{}, err
		}
		err = m.templates.UpdateTemplate(ctx, t, rev)
		if errors.Is(err, ErrChanged) && attempt < casAttempts {
			continue
		}
		if err != nil {
			return Template{}, err
		}
		return t, nil
	}
}

// DeleteTemplate removes the template called name. A template a binding
// still refers to is not removed: ErrTemplateInUse. Errors also:
// ErrTemplateNotFound, or an internal error.
func (m *Manager) DeleteTemplate(ctx context.Context, name string) error {
	if !ValidName(name) {
		return ErrTemplateNotFound
	}
	for attempt := 1; ; attempt++ {
		_, rev, err := m.templates.GetTemplate(ctx, name)
		if err != nil {
			return err
		}
		bindings, err := m.bindings.ListBindings(ctx)
		if err != nil {
			return err
		}
		for _, b := range bindings {
			if b.uses(name) {
				return fmt.Errorf("template %s is used by binding %s: %w", name, b.Workspace, ErrTemplateInUse)
			}
		}
		err = m.templates.DeleteTemplate(ctx, name, rev)
		if errors.Is(err, ErrChanged) && attempt < casAttempts {
			continue
		}
		return err
	}
}

// CreateBinding validates b against its workspace and the templates and
// stores it. Errors: ErrNotFound (no such workspace), *ValidationError,
// ErrBindingExists, or an internal error.
func (m *Manager) CreateBinding(ctx context.Context, b Binding) (Binding, error) {
	b, err := m.checkBinding(ctx, b)
	if err != nil {
		return Binding{}, err
	}
	if err := m.bindings.CreateBinding(ctx, b); err != nil {
		return Binding{}, err
	}
	return b, nil
}

// GetBinding returns the binding of the workspace called name, or ErrBindingNotFound.
func (m *Manager) GetBinding(ctx context.Context, name string) (Binding, error) {
	if !ValidName(name) {
		return Binding{}, ErrBindingNotFound
	}
	b, _, err := m.bindings.GetBinding(ctx, name)
	return b, err
}

// ListBindings returns every binding sorted by name.
func (m *Manager) ListBindings(ctx context.Context) ([]Binding, error) {
	all, err := m.bindings.ListBindings(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b Binding) int { return strings.Compare(a.Workspace, b.Workspace) })
	return all, nil
}

// UpdateBinding replaces the binding of workspace b.Workspace. Errors:
// ErrNotFound (no such workspace), ErrBindingNotFound, *ValidationError, or
// an internal error.
func (m *Manager) UpdateBinding(ctx context.Context, b Binding) (Binding, error) {
	b, err := m.checkBinding(ctx, b)
	if err != nil {
		return Binding{}, err
	}
	for attempt := 1; ; attempt++ {
		_, rev, err := m.bindings.GetBinding(ctx, b.Workspace)
		if err != nil {
			return Binding{}, err
		}
		err = m.bindings.UpdateBinding(ctx, b, rev)
		if errors.Is(err, ErrChanged) && attempt < casAttempts {
			continue
		}
		if err != nil {
			return Binding{}, err
		}
		return b, nil
	}
}

// DeleteBinding removes the binding of the workspace called name. Errors:
// ErrBindingNotFound, or an internal error.
func (m *Manager) DeleteBinding(ctx context.Context, name string) error {
	if !ValidName(name) {
		return ErrBindingNotFound
	}
	for attempt := 1; ; attempt++ {
		_, rev, err := m.bindings.GetBinding(ctx, name)
		if err != nil {
			return err
		}
		err = m.bindings.DeleteBinding(ctx, name, rev)
		if errors.Is(err, ErrChanged) && attempt < casAttempts {
			continue
		}
		return err
	}
}

// checkBinding returns b with nil template lists made empty, or why it is
// invalid: the workspace must exist (ErrNotFound), each cluster must be one of
// its clusters and appear once, and every template named must exist
// (*ValidationError).
func (m *Manager) checkBinding(ctx context.Context, b Binding) (Binding, error) {
	ws, err := m.Get(ctx, b.Workspace)
	if err != nil {
		return Binding{}, err
	}
	out := Binding{Workspace: ws.Name, EnableAutoGPR: b.EnableAutoGPR, Clusters: make([]BindingCluster, 0, len(b.Clusters))}
	seen := map[string]bool{}
	exists := map[string]bool{}
	checkTemplate := func(name string) error {
		if exists[name] {
			return nil
		}
		if !ValidName(name) {
			return invalid("template %q does not exist", name)
		}
		_, _, err := m.templates.GetTemplate(ctx, name)
		if errors.Is(err, ErrTemplateNotFound) {
			return invalid("template %q does not exist", name)
		}
		if err != nil {
			return err
		}
		exists[name] = true
		return nil
	}
	for _, c := range b.Clusters {
		if c.Cluster == "" {
			return Binding{}, invalid("clusterName is required in every cluster entry")
		}
		if !slices.Contains(ws.Clusters, c.Cluster) {
			return Binding{}, invalid("cluster %q is not a cluster of workspace %s", c.Cluster, ws.Name)
		}
		if seen[c.Cluster] {
			return Binding{}, invalid("cluster %q is listed twice", c.Cluster)
		}
		seen[c.Cluster] = true
		listed := map[string]bool{}
		for _, t := range c.Templates {
			if listed[t] {
				return Binding{}, invalid("template %q is listed twice for cluster %q", t, c.Cluster)
			}
			listed[t] = true
			if err := checkTemplate(t); err != nil {
				return Binding{}, err
			}
		}
		if c.DefaultTemplate != "" {
			if err := checkTemplate(c.DefaultTemplate); err != nil {
				return Binding{}, err
			}
		}
		out.Clusters = append(out.Clusters, BindingCluster{Cluster: c.Cluster, DefaultTemplate: c.DefaultTemplate,
			Templates: append([]string{}, c.Templates...)})
	}
	return out, nil
}
