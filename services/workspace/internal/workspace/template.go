package workspace

import (
	"time"

	"github.com/open-egs/egs/libs/events"
)

// TemplateSpec is a GPR template as a caller writes it (EGS §7.1): durations
// as text, IdleTimeout "" when not given.
type TemplateSpec struct {
	Name               string
	Cluster            string
	GPUShape           string
	InstanceType       string
	ExitDuration       string
	GPUsPerNode        int
	Nodes              int
	Priority           int
	MemoryPerGPU       int
	EnforceIdleTimeout bool
	IdleTimeout        string
	EnableEviction     bool
	RequeueOnFailure   bool
}

// Template is a validated GPR template. Templates are global: every
// workspace's binding may use any of them.
type Template struct {
	Name               string
	Cluster            string
	GPUShape           string
	InstanceType       string
	ExitDuration       time.Duration
	GPUsPerNode        int
	Nodes              int
	Priority           int
	MemoryPerGPU       int
	EnforceIdleTimeout bool
	IdleTimeout        time.Duration // 0 unless EnforceIdleTimeout
	EnableEviction     bool
	RequeueOnFailure   bool
}

// NewTemplate validates spec. stored is the template spec replaces (nil on
// create): an update that enforces the idle timeout without a duration keeps
// the stored duration, if there is one (D10). Every error is a *ValidationError.
func NewTemplate(spec TemplateSpec, stored *Template) (Template, error) {
	if !ValidName(spec.Name) {
		return Template{}, invalid("name %q must be a DNS label: lowercase letters, digits and '-', "+
			"starting and ending with a letter or digit, at most %d characters", spec.Name, MaxNameLen)
	}
	if spec.Cluster != "" && !events.ValidToken(spec.Cluster) {
		return Template{}, invalid("clusterName %q is not a valid cluster name", spec.Cluster)
	}
	if spec.GPUsPerNode < 1 {
		return Template{}, invalid("numberOfGPUs must be at least 1")
	}
	if spec.Nodes < 1 {
		return Template{}, invalid("numberOfGPUNodes must be at least 1")
	}
	if spec.MemoryPerGPU < 0 {
		return Template{}, invalid("memoryPerGpu must not be negative")
	}
	if spec.Priority < MinPriority || spec.Priority > MaxPriority {
		return Template{}, invalid("priority must be between %d and %d", MinPriority, MaxPriority)
	}
	if spec.ExitDuration == "" {
		return Template{}, invalid(`"exitDuration" is not allowed to be empty`)
	}
	exit, err := ParseDuration(spec.ExitDuration)
	if err != nil {
		return Template{}, invalid("exitDuration: %v", err)
	}
	var idle time.Duration
	switch {
	case !spec.EnforceIdleTimeout:
		// The duration is sent only with enforceIdleTimeOut true; one sent
		// anyway has no meaning and is dropped.
	case spec.IdleTimeout != "":
		if idle, err = ParseDuration(spec.IdleTimeout); err != nil {
			return Template{}, invalid("idleTimeOutDuration: %v", err)
		}
	case stored != nil && stored.IdleTimeout > 0:
		idle = stored.IdleTimeout
	default:
		return Template{}, invalid("idleTimeOutDuration is required when enforceIdleTimeOut is true")
	}
	return Template{
		Name:               spec.Name,
		Cluster:            spec.Cluster,
		GPUShape:           spec.GPUShape,
		InstanceType:       spec.InstanceType,
		ExitDuration:       exit,
		GPUsPerNode:        spec.GPUsPerNode,
		Nodes:              spec.Nodes,
		Priority:           spec.Priority,
		MemoryPerGPU:       spec.MemoryPerGPU,
		EnforceIdleTimeout: spec.EnforceIdleTimeout,
		IdleTimeout:        idle,
		EnableEviction:     spec.EnableEviction,
		RequeueOnFailure:   spec.RequeueOnFailure,
	}, nil
}

// Binding attaches templates to a workspace per cluster (EGS §8). Its name
// is the workspace's name.
type Binding struct {
	Workspace     string
	Clusters      []BindingCluster
	EnableAutoGPR bool
}

// BindingCluster is the templates a binding offers on one cluster.
type BindingCluster struct {
	Cluster         string
	DefaultTemplate string   // "" when none
	Templates       []string // never nil
}

// uses reports whether b refers to the template called name.
func (b Binding) uses(name string) bool {
	for _, c := range b.Clusters {
		if c.DefaultTemplate == name {
			return true
		}
		for _, t := range c.Templates {
			if t == name {
				return true
			}
		}
	}
	return false
}
