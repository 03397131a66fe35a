package egs

import "github.com/open-egs/egs/libs/rpc"

// TemplateBody is the body of POST and PUT /api/v1/gpr-template (§7.1,
// §7.4). idleTimeOutDuration arrives only with enforceIdleTimeOut true; on
// PUT it may be null, which keeps the stored duration (D10, decided by the
// workspace service). memoryPerGpu also matches memoryPerGPU (D1).
type TemplateBody struct {
	Name                *string `json:"name"`
	ClusterName         *string `json:"clusterName"`
	GPUShape            *string `json:"gpuShape"`
	InstanceType        *string `json:"instanceType"`
	ExitDuration        *string `json:"exitDuration"`
	NumberOfGPUs        *int    `json:"numberOfGPUs"`
	NumberOfGPUNodes    *int    `json:"numberOfGPUNodes"`
	Priority            *int    `json:"priority"`
	MemoryPerGPU        *int    `json:"memoryPerGpu"`
	EnforceIdleTimeOut  *bool   `json:"enforceIdleTimeOut"`
	IdleTimeOutDuration *string `json:"idleTimeOutDuration"`
	EnableEviction      *bool   `json:"enableEviction"`
	RequeueOnFailure    *bool   `json:"requeueOnFailure"`
}

// Template checks the syntax of a template and converts it. Durations, the
// idle-timeout rule (D10) and uniqueness are the workspace service's checks.
func (b TemplateBody) Template() (rpc.Template, error) {
	name := str(b.Name)
	if !ValidName(name) {
		return rpc.Template{}, nameError("name")
	}
	cluster := str(b.ClusterName)
	if cluster != "" && !ValidName(cluster) {
		return rpc.Template{}, nameError("clusterName")
	}
	if b.NumberOfGPUs == nil || *b.NumberOfGPUs < 1 {
		return rpc.Template{}, invalid("%q must be a positive integer", "numberOfGPUs")
	}
	if b.NumberOfGPUNodes == nil || *b.NumberOfGPUNodes < 1 {
		return rpc.Template{}, invalid("%q must be a positive integer", "numberOfGPUNodes")
	}
	if b.MemoryPerGPU != nil && *b.MemoryPerGPU < 0 {
		return rpc.Template{}, invalid("%q must not be negative", "memoryPerGpu")
	}
	if str(b.ExitDuration) == "" {
		return rpc.Template{}, invalid("%q is not allowed to be empty", "exitDuration")
	}
	if err := checkPriority(b.Priority, true); err != nil {
		return rpc.Template{}, err
	}
	mem := 0
	if b.MemoryPerGPU != nil {
		mem = *b.MemoryPerGPU
	}
	return rpc.Template{
		Name:                name,
		ClusterName:         cluster,
		GPUShape:            str(b.GPUShape),
		InstanceType:        str(b.InstanceType),
		ExitDuration:        *b.ExitDuration,
		NumberOfGPUs:        *b.NumberOfGPUs,
		NumberOfGPUNodes:    *b.NumberOfGPUNodes,
		Priority:            *b.Priority,
		MemoryPerGPU:        mem,
		EnforceIdleTimeOut:  boolean(b.EnforceIdleTimeOut),
		IdleTimeOutDuration: str(b.IdleTimeOutDuration),
		EnableEviction:      boolean(b.EnableEviction),
		RequeueOnFailure:    boolean(b.RequeueOnFailure),
	}, nil
}

// TemplateRefBody is the body of DELETE /api/v1/gpr-template (§7.5).
type TemplateRefBody struct {
	GPRTemplateName *string `json:"gprTemplateName"`
}

// Name returns the template name, which must be DNS-style.
func (b TemplateRefBody) Name() (string, error) { return TemplateName(str(b.GPRTemplateName)) }

// TemplateName checks a template name that arrived as gprTemplateName.
func TemplateName(name string) (string, error) {
	if !ValidName(name) {
		return "", nameError("gprTemplateName")
	}
	return name, nil
}

// TemplateCreated is the data of POST /api/v1/gpr-template: exactly
// {gprTemplateName}, since clients reject any other key (§7.1).
type TemplateCreated struct {
	GPRTemplateName string `json:"gprTemplateName"`
}

// Template is a template as §7.2 sends it: the 12 keys of §7.1 plus
// idleTimeOutDuration, always sent ("" when not enforced). memoryPerGpu
// with lower-case pu (D1); durations normalised (D8).
type Template struct {
	Name                string `json:"name"`
	ClusterName         string `json:"clusterName"`
	NumberOfGPUs        int    `json:"numberOfGPUs"`
	NumberOfGPUNodes    int    `json:"numberOfGPUNodes"`
	MemoryPerGPU        int    `json:"memoryPerGpu"`
	GPUShape            string `json:"gpuShape"`
	InstanceType        string `json:"instanceType"`
	ExitDuration        string `json:"exitDuration"`
	Priority            int    `json:"priority"`
	EnforceIdleTimeOut  bool   `json:"enforceIdleTimeOut"`
	IdleTimeOutDuration string `json:"idleTimeOutDuration"`
	EnableEviction      bool   `json:"enableEviction"`
	RequeueOnFailure    bool   `json:"requeueOnFailure"`
}

// FromTemplate converts the workspace service's template.
func FromTemplate(t rpc.Template) Template {
	return Template{
		Name:                t.Name,
		ClusterName:         t.ClusterName,
		NumberOfGPUs:        t.NumberOfGPUs,
		NumberOfGPUNodes:    t.NumberOfGPUNodes,
		MemoryPerGPU:        t.MemoryPerGPU,
		GPUShape:            t.GPUShape,
		InstanceType:        t.InstanceType,
		ExitDuration:        t.ExitDuration,
		Priority:            t.Priority,
		EnforceIdleTimeOut:  t.EnforceIdleTimeOut,
		IdleTimeOutDuration: t.IdleTimeOutDuration,
		EnableEviction:      t.EnableEviction,
		RequeueOnFailure:    t.RequeueOnFailure,
	}
}

// TemplateList is the data of GET /api/v1/gpr-template/list (§7.3); items
// is [] when empty.
type TemplateList struct {
	Items []Template `json:"items"`
}

// FromTemplates converts a list.
func FromTemplates(l []rpc.Template) TemplateList {
	out := TemplateList{Items: make([]Template, 0, len(l))}
	for _, t := range l {
		out.Items = append(out.Items, FromTemplate(t))
	}
	return out
}

// BindingBody is the body of POST and PUT /api/v1/gpr-template-binding
// (§8.1, §8.4). The binding's name is the workspace's.
type BindingBody struct {
	WorkspaceName *string              `json:"workspaceName"`
	Clusters      []BindingClusterBody `json:"clusters"`
	EnableAutoGPR *bool                `json:"enableAutoGPR"`
}

// BindingClusterBody is one request cluster entry: always these three keys.
type BindingClusterBody struct {
	ClusterName         *string  `json:"clusterName"`
	DefaultTemplateName *string  `json:"defaultTemplateName"`
	Templates           []string `json:"templates"`
}

// Binding checks the syntax of a binding and converts it. Whether the
// workspace, its clusters and the templates exist is the workspace
// service's check.
func (b BindingBody) Binding() (rpc.Binding, error) {
	ws, err := WorkspaceName("workspaceName", str(b.WorkspaceName))
	if err != nil {
		return rpc.Binding{}, err
	}
	out := rpc.Binding{Name: ws, EnableAutoGPR: boolean(b.EnableAutoGPR), Clusters: make([]rpc.BindingCluster, 0, len(b.Clusters))}
	for _, c := range b.Clusters {
		cluster := str(c.ClusterName)
		if !ValidName(cluster) {
			return rpc.Binding{}, nameError("clusterName")
		}
		def := str(c.DefaultTemplateName)
		if def != "" && !ValidName(def) {
			return rpc.Binding{}, nameError("defaultTemplateName")
		}
		for _, t := range c.Templates {
			if !ValidName(t) {
				return rpc.Binding{}, invalid("%q must hold DNS-style template names", "templates")
			}
		}
		out.Clusters = append(out.Clusters, rpc.BindingCluster{ClusterName: cluster, DefaultTemplateName: def,
			Templates: nonNil(c.Templates)})
	}
	return out, nil
}

// BindingRefBody is the body of DELETE /api/v1/gpr-template-binding (§8.5).
type BindingRefBody struct {
	GPRTemplateBindingName *string `json:"gprTemplateBindingName"`
}

// Name returns the binding (workspace) name, which must be DNS-style.
func (b BindingRefBody) Name() (string, error) {
	return WorkspaceName("gprTemplateBindingName", str(b.GPRTemplateBindingName))
}

// BindingCluster is the response cluster entry: exactly these five keys in
// every binding response (§8, D2). No controller reports template readiness
// yet, so the statuses are "" and {}.
type BindingCluster struct {
	ClusterName           string            `json:"clusterName"`
	DefaultTemplateName   string            `json:"defaultTemplateName"`
	Templates             []string          `json:"templates"`
	DefaultTemplateStatus string            `json:"defaultTemplateStatus"`
	TemplateStatus        map[string]string `json:"templateStatus"`
}

func fromBindingClusters(cs []rpc.BindingCluster) []BindingCluster {
	out := make([]BindingCluster, 0, len(cs))
	for _, c := range cs {
		out = append(out, BindingCluster{ClusterName: c.ClusterName, DefaultTemplateName: c.DefaultTemplateName,
			Templates: append([]string{}, c.Templates...), TemplateStatus: map[string]string{}})
	}
	return out
}

// BindingWithNamespace is a binding as create, update (exactly these four
// keys: clients reject others) and list items send it (§8.1, §8.3, §8.4).
type BindingWithNamespace struct {
	Name          string           `json:"name"`
	Namespace     string           `json:"namespace"`
	Clusters      []BindingCluster `json:"clusters"`
	EnableAutoGPR bool             `json:"enableAutoGPR"`
}

// FromBindingWithNamespace converts a binding; namespace is the workspace's
// project namespace, its first one (D2).
func FromBindingWithNamespace(b rpc.Binding, namespace string) BindingWithNamespace {
	return BindingWithNamespace{Name: b.Name, Namespace: namespace, Clusters: fromBindingClusters(b.Clusters),
		EnableAutoGPR: b.EnableAutoGPR}
}

// Binding is a binding as GET sends it: exactly {name, clusters,
// enableAutoGPR}, never a namespace (§8.2, D2).
type Binding struct {
	Name          string           `json:"name"`
	Clusters      []BindingCluster `json:"clusters"`
	EnableAutoGPR bool             `json:"enableAutoGPR"`
}

// FromBinding converts a binding for GET.
func FromBinding(b rpc.Binding) Binding {
	return Binding{Name: b.Name, Clusters: fromBindingClusters(b.Clusters), EnableAutoGPR: b.EnableAutoGPR}
}

// BindingList is the data of GET /api/v1/gpr-template-binding/list (§8.3);
// templateBindings is [] when empty.
type BindingList struct {
	TemplateBindings []BindingWithNamespace `json:"templateBindings"`
}

// FirstNamespace is the namespace a binding response names: the workspace's
// first, or "" when it has none.
func FirstNamespace(w rpc.Workspace) string {
	if len(w.Namespaces) == 0 {
		return ""
	}
	return w.Namespaces[0]
}
