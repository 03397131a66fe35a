package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/wire"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

// The buckets of GPR templates and template bindings, owned by the workspace
// service. libs/events names only the buckets other services already read,
// so their names live here.
const (
	BucketTemplates = "EGS_GPR_TEMPLATES" // key = template name → rpc.Template
	BucketBindings  = "EGS_GPR_BINDINGS"  // key = workspace name → rpc.Binding
)

// TemplatesBucket is the configuration of the templates bucket.
func TemplatesBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketTemplates,
		Description: "GPR templates; owner: workspace service",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// BindingsBucket is the configuration of the template bindings bucket.
func BindingsBucket() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      BucketBindings,
		Description: "GPR template bindings, one per workspace; owner: workspace service",
		History:     1,
		Storage:     jetstream.FileStorage,
	}
}

// entries is a KV bucket of JSON values with compare-and-set writes; notFound
// and exists are the domain errors its adapters translate to.
type entries struct {
	kv       jetstream.KeyValue
	what     string
	notFound error
	exists   error
}

func (e entries) create(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", e.what, key, err)
	}
	_, err = e.kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("create %s %s: %w", e.what, key, e.exists)
	}
	if err != nil {
		return fmt.Errorf("create %s %s: %w", e.what, key, err)
	}
	return nil
}

func (e entries) get(ctx context.Context, key string, v any) (uint64, error) {
	en, err := e.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return 0, fmt.Errorf("get %s %s: %w", e.what, key, e.notFound)
	}
	if err != nil {
		return 0, fmt.Errorf("get %s %s: %w", e.what, key, err)
	}
	if err := json.Unmarshal(en.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s %s: %w", e.what, key, err)
	}
	return en.Revision(), nil
}

func (e entries) update(ctx context.Context, key string, v any, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", e.what, key, err)
	}
	_, err = e.kv.Update(ctx, key, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("update %s %s at revision %d: %w", e.what, key, rev, workspace.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("update %s %s: %w", e.what, key, err)
	}
	return nil
}

func (e entries) delete(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := e.kv.Delete(ctx, key, opts...)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("delete %s %s at revision %d: %w", e.what, key, rev, workspace.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", e.what, key, err)
	}
	return nil
}

func listAll[T any](ctx context.Context, e entries) ([]T, error) {
	all, err := bus.ReadAll(ctx, e.kv, "")
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(all))
	for _, en := range all {
		var v T
		if err := json.Unmarshal(en.Value(), &v); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", e.what, en.Key(), err)
		}
		out = append(out, v)
	}
	return out, nil
}

var _ workspace.TemplateStore = (*Templates)(nil)

// Templates keeps GPR templates in BucketTemplates. It is safe for concurrent use.
type Templates struct{ e entries }

// NewTemplates returns a template store on kv (the bucket BucketTemplates).
func NewTemplates(kv jetstream.KeyValue) *Templates {
	return &Templates{e: entries{kv: kv, what: "template", notFound: workspace.ErrTemplateNotFound,
		exists: workspace.ErrTemplateExists}}
}

// CreateTemplate stores t with kv.Create: workspace.ErrTemplateExists if taken.
func (s *Templates) CreateTemplate(ctx context.Context, t workspace.Template) error {
	return s.e.create(ctx, t.Name, wire.TemplateToRPC(t))
}

// GetTemplate returns a template and its revision, or workspace.ErrTemplateNotFound.
func (s *Templates) GetTemplate(ctx context.Context, name string) (workspace.Template, uint64, error) {
	var r rpc.Template
	rev, err := s.e.get(ctx, name, &r)
	if err != nil {
		return workspace.Template{}, 0, err
	}
	t, err := wire.TemplateFromRPC(r)
	return t, rev, err
}

// ListTemplates returns every template.
func (s *Templates) ListTemplates(ctx context.Context) ([]workspace.Template, error) {
	all, err := listAll[rpc.Template](ctx, s.e)
	if err != nil {
		return nil, err
	}
	out := make([]workspace.Template, 0, len(all))
	for _, r := range all {
		t, err := wire.TemplateFromRPC(r)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// UpdateTemplate replaces the template at rev: workspace.ErrChanged if it moved on.
func (s *Templates) UpdateTemplate(ctx context.Context, t workspace.Template, rev uint64) error {
	return s.e.update(ctx, t.Name, wire.TemplateToRPC(t), rev)
}

// DeleteTemplate removes the template at rev: workspace.ErrChanged if it moved on.
func (s *Templates) DeleteTemplate(ctx context.Context, name string, rev uint64) error {
	return s.e.delete(ctx, name, rev)
}

var _ workspace.BindingStore = (*Bindings)(nil)

// Bindings keeps template bindings in BucketBindings. It is safe for concurrent use.
type Bindings struct{ e entries }

// NewBindings returns a binding store on kv (the bucket BucketBindings).
func NewBindings(kv jetstream.KeyValue) *Bindings {
	return &Bindings{e: entries{kv: kv, what: "binding", notFound: workspace.ErrBindingNotFound,
		exists: workspace.ErrBindingExists}}
}

// CreateBinding stores b with kv.Create: workspace.ErrBindingExists if taken.
func (s *Bindings) CreateBinding(ctx context.Context, b workspace.Binding) error {
	return s.e.create(ctx, b.Workspace, wire.BindingToRPC(b))
}

// GetBinding returns a binding and its revision, or workspace.ErrBindingNotFound.
func (s *Bindings) GetBinding(ctx context.Context, name string) (workspace.Binding, uint64, error) {
	var r rpc.Binding
	rev, err := s.e.get(ctx, name, &r)
	if err != nil {
		return workspace.Binding{}, 0, err
	}
	return wire.BindingFromRPC(r), rev, nil
}

// ListBindings returns every binding.
func (s *Bindings) ListBindings(ctx context.Context) ([]workspace.Binding, error) {
	all, err := listAll[rpc.Binding](ctx, s.e)
	if err != nil {
		return nil, err
	}
	out := make([]workspace.Binding, 0, len(all))
	for _, r := range all {
		out = append(out, wire.BindingFromRPC(r))
	}
	return out, nil
}

// UpdateBinding replaces the binding at rev: workspace.ErrChanged if it moved on.
func (s *Bindings) UpdateBinding(ctx context.Context, b workspace.Binding, rev uint64) error {
	return s.e.update(ctx, b.Workspace, wire.BindingToRPC(b), rev)
}

// DeleteBinding removes the binding at rev (any revision when rev is 0):
// workspace.ErrChanged if it moved on.
func (s *Bindings) DeleteBinding(ctx context.Context, name string, rev uint64) error {
	return s.e.delete(ctx, name, rev)
}
