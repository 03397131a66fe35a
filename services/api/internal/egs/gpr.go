package egs

import (
	"github.com/open-egs/egs/libs/rpc"
)

// Priority bounds (low 1-100, medium 101-200, high 201-300).
const (
	MinPriority = 1
	MaxPriority = 300
)

// GPUSharingMode is the only sharing mode: whole nodes.
const GPUSharingMode = "Virtual Machine"

// CreateGPRBody is the body of POST /api/v1/gpr (§6.1) and, with requestName
// instead of gprName, of POST /api/v1/gpr/waittime (§6.6). Every field is a
// pointer or slice so that null and absent read alike. memoryPerGpu also
// matches memoryPerGPU (keys match case-insensitively, D1).
type CreateGPRBody struct {
	GPRName                    *string  `json:"gprName"`
	RequestName                *string  `json:"requestName"`
	SliceName                  *string  `json:"sliceName"`
	ClusterName                *string  `json:"clusterName"`
	PreferredClusters          []string `json:"preferredClusters"`
	EnableAutoClusterSelection *bool    `json:"enableAutoClusterSelection"`
	EnableAutoGPUSelection     *bool    `json:"enableAutoGpuSelection"`
	NumberOfGPUs               *int     `json:"numberOfGPUs"`
	NumberOfGPUNodes           *int     `json:"numberOfGPUNodes"`
	InstanceType               *string  `json:"instanceType"`
	GPUShape                   *string  `json:"gpuShape"`
	MemoryPerGPU               *int     `json:"memoryPerGpu"`
	ExitDuration               *string  `json:"exitDuration"`
	Priority                   *int     `json:"priority"`
	IdleTimeOutDuration        *string  `json:"idleTimeOutDuration"`
	EnforceIdleTimeOut         *bool    `json:"enforceIdleTimeOut"`
	EnableEviction             *bool    `json:"enableEviction"`
	RequeueOnFailure           *bool    `json:"requeueOnFailure"`
}

// Spec checks the syntax of a create request and converts it. Durations,
// shapes and cluster membership are checked by the scheduler.
func (b CreateGPRBody) Spec() (rpc.GPRSpec, error) { return b.spec(false) }

// WaitTimeSpec is Spec for a wait-time request, where the name is optional
// and may come as requestName or gprName.
func (b CreateGPRBody) WaitTimeSpec() (rpc.GPRSpec, error) { return b.spec(true) }

func (b CreateGPRBody) spec(waitTime bool) (rpc.GPRSpec, error) {
	name := str(b.GPRName)
	if waitTime {
		if n := str(b.RequestName); n != "" {
			name = n
		}
		if name != "" && !validDisplayName(name, MaxRequestNameLen) {
			return rpc.GPRSpec{}, displayNameError("requestName", MaxRequestNameLen)
		}
	} else if !validDisplayName(name, MaxDisplayNameLen) {
		return rpc.GPRSpec{}, displayNameError("gprName", MaxDisplayNameLen)
	}
	ws := str(b.SliceName)
	if !ValidName(ws) {
		return rpc.GPRSpec{}, nameError("sliceName")
	}
	cluster := str(b.ClusterName)
	if cluster != "" && !ValidName(cluster) {
		return rpc.GPRSpec{}, nameError("clusterName")
	}
	for _, c := range b.PreferredClusters {
		if !ValidName(c) {
			return rpc.GPRSpec{}, invalid("%q must hold DNS-style cluster names", "preferredClusters")
		}
	}
	if b.NumberOfGPUs == nil || *b.NumberOfGPUs < 1 {
		return rpc.GPRSpec{}, invalid("%q must be a positive integer", "numberOfGPUs")
	}
	if b.NumberOfGPUNodes == nil || *b.NumberOfGPUNodes < 1 {
		return rpc.GPRSpec{}, invalid("%q must be a positive integer", "numberOfGPUNodes")
	}
	if b.MemoryPerGPU != nil && *b.MemoryPerGPU < 0 {
		return rpc.GPRSpec{}, invalid("%q must not be negative", "memoryPerGpu")
	}
	if str(b.ExitDuration) == "" {
		return rpc.GPRSpec{}, invalid("%q is not allowed to be empty", "exitDuration")
	}
	if err := checkPriority(b.Priority, true); err != nil {
		return rpc.GPRSpec{}, err
	}
	var idle *string
	if s := str(b.IdleTimeOutDuration); s != "" {
		idle = &s
	}
	mem := 0
	if b.MemoryPerGPU != nil {
		mem = *b.MemoryPerGPU
	}
	return rpc.GPRSpec{
		Name:               name,
		Workspace:          ws,
		Cluster:            cluster,
		PreferredClusters:  nonNil(b.PreferredClusters),
		AutoCluster:        boolean(b.EnableAutoClusterSelection),
		AutoGPU:            boolean(b.EnableAutoGPUSelection),
		GPUsPerNode:        *b.NumberOfGPUs,
		Nodes:              *b.NumberOfGPUNodes,
		InstanceType:       str(b.InstanceType),
		GPUShape:           str(b.GPUShape),
		MemoryPerGPU:       mem,
		ExitDuration:       *b.ExitDuration,
		Priority:           *b.Priority,
		IdleTimeout:        idle,
		EnforceIdleTimeout: boolean(b.EnforceIdleTimeOut),
		EnableEviction:     b.EnableEviction,
		RequeueOnFailure:   b.RequeueOnFailure,
	}, nil
}

func checkPriority(p *int, required bool) error {
	if p == nil && !required {
		return nil
	}
	if p == nil || *p < MinPriority || *p > MaxPriority {
		return invalid("%q must be an integer between %d and %d", "priority", MinPriority, MaxPriority)
	}
	return nil
}

// GPRRefBody is the body of DELETE /api/v1/gpr (§6.2).
type GPRRefBody struct {
	GPRID *string `json:"gprId"`
}

// ID returns the GPR id, which must be present.
func (b GPRRefBody) ID() (string, error) {
	if str(b.GPRID) == "" {
		return "", invalid("%q is required", "gprId")
	}
	return *b.GPRID, nil
}

// UpdateGPRBody is the body of PUT /api/v1/gpr (§6.3): each present key is
// one operation.
type UpdateGPRBody struct {
	GPRID        *string `json:"gprId"`
	Priority     *int    `json:"priority"`
	GPRName      *string `json:"gprName"`
	EarlyRelease *bool   `json:"earlyRelease"`
}

// Request checks the syntax of an update and converts it for caller.
func (b UpdateGPRBody) Request(caller rpc.Caller) (rpc.UpdateGPRRequest, error) {
	id, err := GPRRefBody{GPRID: b.GPRID}.ID()
	if err != nil {
		return rpc.UpdateGPRRequest{}, err
	}
	if err := checkPriority(b.Priority, false); err != nil {
		return rpc.UpdateGPRRequest{}, err
	}
	if b.GPRName != nil && !validDisplayName(*b.GPRName, MaxDisplayNameLen) {
		return rpc.UpdateGPRRequest{}, displayNameError("gprName", MaxDisplayNameLen)
	}
	if b.Priority == nil && b.GPRName == nil && b.EarlyRelease == nil {
		return rpc.UpdateGPRRequest{}, invalid("one of %q, %q or %q is required", "priority", "gprName", "earlyRelease")
	}
	return rpc.UpdateGPRRequest{Caller: caller, GPRID: id, Priority: b.Priority, Name: b.GPRName, EarlyRelease: b.EarlyRelease}, nil
}

// GPR is the GPR object of §6.4: the 20 required keys plus
// enforceIdleTimeOut and idleTimeOutDuration. No key is ever omitted.
type GPR struct {
	GPRID                  string    `json:"gprId"`
	GPRName                string    `json:"gprName"`
	SliceName              string    `json:"sliceName"`
	ClusterName            string    `json:"clusterName"`
	NumberOfGPUs           int       `json:"numberOfGPUs"`
	NumberOfGPUNodes       int       `json:"numberOfGPUNodes"`
	InstanceType           string    `json:"instanceType"`
	GPUShape               string    `json:"gpuShape"`
	MemoryPerGPU           int       `json:"memoryPerGPU"`
	Priority               int       `json:"priority"`
	GPUSharingMode         string    `json:"gpuSharingMode"`
	EstimatedStartTime     string    `json:"estimatedStartTime"`
	EstimatedWaitTime      string    `json:"estimatedWaitTime"`
	ExitDuration           string    `json:"exitDuration"`
	EarlyRelease           bool      `json:"earlyRelease"`
	MultiNode              bool      `json:"multiNode"`
	DedicatedNodes         bool      `json:"dedicatedNodes"`
	EnableRDMA             bool      `json:"enableRDMA"`
	EnableSecondaryNetwork bool      `json:"enableSecondaryNetwork"`
	EnforceIdleTimeOut     bool      `json:"enforceIdleTimeOut"`
	IdleTimeOutDuration    string    `json:"idleTimeOutDuration"`
	Status                 GPRStatus `json:"status"`
	// Our additions (clients ignore extra keys): the place in the queue
	// (1-based, 0 when not queued), why it waits, and who evicted it.
	QueuePosition  int          `json:"queuePosition"`
	PendingReasons []rpc.Reason `json:"pendingReasons"`
	EvictedBy      string       `json:"evictedBy"`
}

// GPRStatus is the status object of a GPR: exactly the ten keys of §6.4.
type GPRStatus struct {
	ProvisioningStatus  string   `json:"provisioningStatus"`
	FailureReason       string   `json:"failureReason"`
	NumGPUsAllocated    int      `json:"numGpusAllocated"`
	StartTimestamp      string   `json:"startTimestamp"`
	CompletionTimestamp string   `json:"completionTimestamp"`
	Cost                string   `json:"cost"`
	Nodes               []string `json:"nodes"`
	InternalState       string   `json:"internalState"`
	RetryCount          int      `json:"retryCount"`
	DelayedCount        int      `json:"delayedCount"`
}

// FromGPR converts the scheduler's view of a GPR to the wire object.
// provisioningStatus and internalState are already EGS values (D14).
func FromGPR(g rpc.GPR) GPR {
	idle := ""
	if g.IdleTimeout > 0 {
		idle = FormatDuration(g.IdleTimeout)
	}
	return GPR{
		GPRID:               g.GPRID,
		GPRName:             g.Name,
		SliceName:           g.Workspace,
		ClusterName:         g.Cluster,
		NumberOfGPUs:        g.GPUsPerNode,
		NumberOfGPUNodes:    g.Nodes,
		InstanceType:        g.InstanceType,
		GPUShape:            g.GPUShape,
		MemoryPerGPU:        g.MemoryPerGPU,
		Priority:            g.Priority,
		GPUSharingMode:      GPUSharingMode,
		EstimatedStartTime:  FormatTime(g.EstimatedStart),
		EstimatedWaitTime:   FormatDuration(g.EstimatedWait),
		ExitDuration:        FormatDuration(g.ExitDuration),
		EarlyRelease:        g.EarlyRelease,
		MultiNode:           g.Nodes > 1,
		EnforceIdleTimeOut:  g.EnforceIdleTimeout,
		IdleTimeOutDuration: idle,
		Status: GPRStatus{
			ProvisioningStatus:  g.ProvisioningStatus,
			FailureReason:       g.FailureReason,
			NumGPUsAllocated:    g.GPUsAllocated,
			StartTimestamp:      FormatTime(g.StartedAt),
			CompletionTimestamp: FormatTime(g.CompletedAt),
			Nodes:               append([]string{}, g.NodeNames...),
			InternalState:       g.InternalState,
			RetryCount:          g.RetryCount,
			DelayedCount:        g.DelayedCount,
		},
		QueuePosition:  g.QueuePosition,
		PendingReasons: append([]rpc.Reason{}, g.PendingReasons...),
		EvictedBy:      g.EvictedBy,
	}
}

// GPRList is the data of GET /api/v1/gpr/list (§6.5).
type GPRList struct {
	Items []GPR `json:"items"`
}

// FromGPRList converts a list; items is [] when empty.
func FromGPRList(l rpc.GPRList) GPRList {
	out := GPRList{Items: make([]GPR, 0, len(l.Items))}
	for _, g := range l.Items {
		out.Items = append(out.Items, FromGPR(g))
	}
	return out
}

// WaitTime is the data of POST /api/v1/gpr/waittime (D12).
type WaitTime struct {
	EstimatedWaitTime  string `json:"estimatedWaitTime"`
	EstimatedStartTime string `json:"estimatedStartTime"`
}

// FromWaitTime converts the scheduler's estimate.
func FromWaitTime(w rpc.WaitTime) WaitTime {
	return WaitTime{EstimatedWaitTime: FormatDuration(w.EstimatedWait), EstimatedStartTime: FormatTime(w.EstimatedStart)}
}

// GPRID is the data of POST /api/v1/gpr.
type GPRID struct {
	GPRID string `json:"gprId"`
}
