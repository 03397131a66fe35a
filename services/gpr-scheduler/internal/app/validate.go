package app

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-egs/egs/libs/duration"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/gpr-scheduler/internal/gpr"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/queue"
)

// resolveSpec validates a request against its workspace and the inventory and
// resolves the candidate clusters (decision D5). Errors are *rpc.Error (422).
func resolveSpec(in rpc.GPRSpec, ws rpc.Workspace, nodes []queue.Node) (gpr.Spec, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if strings.TrimSpace(in.ExitDuration) == "" {
		return gpr.Spec{}, rpc.Errorf(rpc.Invalid, `"exitDuration" is not allowed to be empty`)
	}
	exit, err := duration.Parse(in.ExitDuration)
	if err != nil {
		bad("exitDuration: %v", err)
	}
	var idle time.Duration
	if in.IdleTimeout != nil && strings.TrimSpace(*in.IdleTimeout) != "" {
		if idle, err = duration.Parse(*in.IdleTimeout); err != nil {
			bad("idleTimeOutDuration: %v", err)
		}
	} else if in.EnforceIdleTimeout {
		bad("idleTimeOutDuration is required when enforceIdleTimeOut is true")
	}
	if in.Priority < 1 || in.Priority > 300 {
		bad("priority must be between 1 and 300, got %d", in.Priority)
	}
	if in.GPUsPerNode < 1 || in.GPUsPerNode > MaxGPUsPerNode {
		bad("numberOfGPUs must be between 1 and %d, got %d", MaxGPUsPerNode, in.GPUsPerNode)
	}
	if in.Nodes < 1 || in.Nodes > MaxNodes {
		bad("numberOfGPUNodes must be between 1 and %d, got %d", MaxNodes, in.Nodes)
	}
	if in.MemoryPerGPU < 0 {
		bad("memoryPerGpu must not be negative")
	}
	clusters, cerr := candidateClusters(in, ws)
	if cerr != "" {
		bad("%s", cerr)
	}
	spec := gpr.Spec{
		GPUsPerNode: in.GPUsPerNode, Nodes: in.Nodes, InstanceType: strings.TrimSpace(in.InstanceType),
		GPUShape: strings.TrimSpace(in.GPUShape), MemoryPerGPU: in.MemoryPerGPU, Priority: in.Priority,
		Clusters: clusters, AutoGPU: in.AutoGPU, ExitDuration: exit, IdleTimeout: idle,
		EnforceIdleTimeout: in.EnforceIdleTimeout,
		EnableEviction:     in.EnableEviction != nil && *in.EnableEviction && (ws.Policy.AutoEviction == nil || *ws.Policy.AutoEviction),
		RequeueOnFailure:   in.RequeueOnFailure != nil && *in.RequeueOnFailure,
		AllowedShapes:      slices.Clone(ws.Policy.AllowedShapes),
	}
	if in.RequeueOnFailure == nil && ws.Policy.RequeueOnFailure != nil {
		spec.RequeueOnFailure = *ws.Policy.RequeueOnFailure
	}
	if !spec.AutoGPU && spec.InstanceType == "" && spec.GPUShape == "" {
		bad("gpuShape or instanceType is required when enableAutoGpuSelection is false")
	}
	if len(problems) == 0 {
		if msg := fits(spec, ws.Name, nodes); msg != "" {
			bad("%s", msg)
		}
	}
	if len(problems) > 0 {
		return gpr.Spec{}, rpc.Errorf(rpc.Invalid, "%s", strings.Join(problems, "; "))
	}
	return spec, nil
}

// Hard limits of the contract: beyond them a request is refused (422).
const (
	MaxGPUsPerNode        = 100
	MaxNodes              = 100
	MaxQueuedPerWorkspace = 100
)

// overPolicy lists how a request exceeds its workspace's policy (with queued
// GPRs of the workspace already waiting); such a request awaits approval.
func overPolicy(spec gpr.Spec, p rpc.Policy, queued int) []string {
	var out []string
	if p.MaxGPUsPerGPR > 0 && spec.GPUsPerNode*spec.Nodes > p.MaxGPUsPerGPR {
		out = append(out, fmt.Sprintf("%d GPUs asked, the workspace allows %d per GPR", spec.GPUsPerNode*spec.Nodes, p.MaxGPUsPerGPR))
	}
	if p.MaxMemoryPerGPU > 0 && spec.MemoryPerGPU > p.MaxMemoryPerGPU {
		out = append(out, fmt.Sprintf("%d GB per GPU asked, the workspace allows %d", spec.MemoryPerGPU, p.MaxMemoryPerGPU))
	}
	if p.MaxExitDuration > 0 && spec.ExitDuration > p.MaxExitDuration {
		out = append(out, fmt.Sprintf("exitDuration %s exceeds the workspace's %s", spec.ExitDuration, p.MaxExitDuration))
	}
	if p.MinPriority > 0 && spec.Priority < p.MinPriority || p.MaxPriority > 0 && spec.Priority > p.MaxPriority {
		out = append(out, fmt.Sprintf("priority %d is outside the workspace's range %d..%d", spec.Priority, max(p.MinPriority, 1), cmp.Or(p.MaxPriority, 300)))
	}
	if p.MaxQueuedGPRs > 0 && queued >= p.MaxQueuedGPRs {
		out = append(out, fmt.Sprintf("the workspace already has %d GPRs waiting (policy: %d)", queued, p.MaxQueuedGPRs))
	}
	if len(p.AllowedShapes) > 0 && !spec.AutoGPU {
		for _, want := range []string{spec.GPUShape, spec.InstanceType} {
			if want != "" && !slices.ContainsFunc(p.AllowedShapes, func(a string) bool { return strings.EqualFold(a, want) }) {
				out = append(out, fmt.Sprintf("shape %s is not among the workspace's allowed shapes %v", want, p.AllowedShapes))
			}
		}
	}
	return out
}

func candidateClusters(in rpc.GPRSpec, ws rpc.Workspace) ([]string, string) {
	inWS := func(c string) bool { return slices.Contains(ws.Clusters, c) }
	var out []string
	add := func(c string) {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	var pref []string
	for _, c := range in.PreferredClusters {
		if c = strings.TrimSpace(c); c != "" {
			pref = append(pref, c)
		}
	}
	switch {
	case in.AutoCluster:
		for _, c := range pref {
			if inWS(c) {
				add(c)
			}
		}
		for _, c := range ws.Clusters {
			add(c)
		}
	case strings.TrimSpace(in.Cluster) != "":
		c := strings.TrimSpace(in.Cluster)
		if !inWS(c) {
			return nil, fmt.Sprintf("cluster %s is not a cluster of workspace %s", c, ws.Name)
		}
		add(c)
	case len(pref) > 0:
		for _, c := range pref {
			if !inWS(c) {
				return nil, fmt.Sprintf("preferred cluster %s is not a cluster of workspace %s", c, ws.Name)
			}
			add(c)
		}
	default:
		for _, c := range ws.Clusters {
			add(c)
		}
	}
	return out, ""
}

// fits refuses a request that no amount of waiting could satisfy: no node of
// its shape on its clusters, or fewer such nodes than it asks for.
func fits(spec gpr.Spec, ws string, nodes []queue.Node) string {
	r := request(&gpr.Record{Workspace: ws, Spec: spec})
	best := 0
	for _, c := range spec.Clusters {
		n := 0
		for _, node := range nodes {
			if node.Cluster == c && queue.ShapeMatches(node, r) {
				n++
			}
		}
		best = max(best, n)
	}
	switch {
	case best == 0:
		return fmt.Sprintf("no GPU node on %s matches numberOfGPUs %d, memoryPerGpu %d, gpuShape %q, instanceType %q (see GET /api/v1/inventory?sliceName=%s)",
			strings.Join(spec.Clusters, ", "), spec.GPUsPerNode, spec.MemoryPerGPU, spec.GPUShape, spec.InstanceType, ws)
	case best < spec.Nodes:
		return fmt.Sprintf("numberOfGPUNodes %d exceeds the %d matching node(s) on any one cluster of the workspace", spec.Nodes, best)
	}
	return ""
}

func request(r *gpr.Record) queue.Request {
	return queue.Request{
		ID: r.ID, Workspace: r.Workspace, Priority: r.Spec.Priority, CreatedAt: r.OrderAt(),
		GPUsPerNode: r.Spec.GPUsPerNode, Nodes: r.Spec.Nodes, InstanceType: r.Spec.InstanceType,
		GPUShape: r.Spec.GPUShape, MemoryPerGPU: r.Spec.MemoryPerGPU, AutoGPU: r.Spec.AutoGPU,
		Clusters: r.Spec.Clusters, ExitDuration: r.Spec.ExitDuration, AllowedShapes: r.Spec.AllowedShapes,
	}
}
