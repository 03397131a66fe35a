package app

import (
	"fmt"
	"slices"
	"strings"
	"time"

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
	exit, err := gpr.ParseDuration(in.ExitDuration)
	if err != nil {
		bad("exitDuration: %v", err)
	}
	var idle time.Duration
	if in.IdleTimeout != nil && strings.TrimSpace(*in.IdleTimeout) != "" {
		if idle, err = gpr.ParseDuration(*in.IdleTimeout); err != nil {
			bad("idleTimeOutDuration: %v", err)
		}
	} else if in.EnforceIdleTimeout {
		bad("idleTimeOutDuration is required when enforceIdleTimeOut is true")
	}
	if in.Priority < 1 || in.Priority > 300 {
		bad("priority must be between 1 and 300, got %d", in.Priority)
	}
	if in.GPUsPerNode < 1 {
		bad("numberOfGPUs must be at least 1")
	}
	if in.Nodes < 1 {
		bad("numberOfGPUNodes must be at least 1")
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
		EnableEviction:     in.EnableEviction != nil && *in.EnableEviction,
		RequeueOnFailure:   in.RequeueOnFailure != nil && *in.RequeueOnFailure,
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
		ID: r.ID, Workspace: r.Workspace, Priority: r.Spec.Priority, CreatedAt: r.CreatedAt,
		GPUsPerNode: r.Spec.GPUsPerNode, Nodes: r.Spec.Nodes, InstanceType: r.Spec.InstanceType,
		GPUShape: r.Spec.GPUShape, MemoryPerGPU: r.Spec.MemoryPerGPU, AutoGPU: r.Spec.AutoGPU,
		Clusters: r.Spec.Clusters, ExitDuration: r.Spec.ExitDuration,
	}
}
