package events

import "time"

// GPUSampleBatch is the payload of egs.telemetry.v1.gpu.<cluster>.<node>: one
// reading of every GPU of one node, taken by its node agent at At. The event
// id is <cluster>.<node token>.<Boot>.<Seq>, so a batch replayed after a bus
// outage is stored once.
type GPUSampleBatch struct {
	Cluster string      `json:"cluster"`
	Node    string      `json:"node"` // the Kubernetes node name
	Boot    string      `json:"boot"` // random per agent start; orders Seq
	Seq     uint64      `json:"seq"`  // 1, 2, 3... per Boot
	At      time.Time   `json:"at"`
	GPUs    []GPUSample `json:"gpus"`
	// Dropped counts the batches this agent has dropped since Boot because
	// its buffer was full while the bus was unreachable.
	Dropped uint64 `json:"dropped,omitempty"`
}

// HeaderTelemetryDropped is the header a node agent sets on each sample
// batch message when it sends it: the batches it has dropped since Boot up
// to then. GPUSampleBatch.Dropped is the count when the batch was made,
// before later batches pushed older ones out of a full buffer; the header
// counts those too, so a gap before a batch that the agent's own drops
// explain is not taken for a loss.
const HeaderTelemetryDropped = "egs-dropped"

// GPUSample is one GPU (or MIG instance) as NVML reported it. A value NVML
// does not support on the device is left nil (MIG instances have no GPU
// utilisation, for example).
type GPUSample struct {
	UUID       string `json:"uuid"`
	Index      int    `json:"index"`
	Name       string `json:"name"`
	ParentUUID string `json:"parentUuid,omitempty"` // set on a MIG instance
	// Lost is true when the GPU fell off the bus (NVML GPU_IS_LOST); no other
	// reading is present then.
	Lost bool `json:"lost,omitempty"`

	GPUUtil *uint32 `json:"gpuUtil,omitempty"` // percent
	MemUtil *uint32 `json:"memUtil,omitempty"` // percent
	// MemUsedBytes is the memory in use, without what the driver reserves
	// (MemReservedBytes), as nvidia-smi and DCGM count it; on a driver without
	// nvmlDeviceGetMemoryInfo_v2 it includes the reserve, which is then 0.
	MemUsedBytes     uint64  `json:"memUsed"`
	MemTotalBytes    uint64  `json:"memTotal"`
	MemReservedBytes uint64  `json:"memReserved,omitempty"`
	PowerMilliW      *uint32 `json:"powerMw,omitempty"`
	PowerLimitMW     *uint32 `json:"powerLimitMw,omitempty"`
	TempC            *uint32 `json:"tempC,omitempty"`
	SMClockMHz       *uint32 `json:"smClockMhz,omitempty"`
	MemClockMHz      *uint32 `json:"memClockMhz,omitempty"`
	ECCCorrected     *uint64 `json:"eccCorrected,omitempty"`   // volatile, since driver load
	ECCUncorrected   *uint64 `json:"eccUncorrected,omitempty"` // volatile, since driver load
	ThrottleReasons  uint64  `json:"throttleReasons,omitempty"`
	// XIDs are the critical XID errors NVML reported since the last batch.
	XIDs      []uint64     `json:"xids,omitempty"`
	Processes []GPUProcess `json:"processes,omitempty"`
}

// GPUProcess is one compute process on a GPU, mapped to its pod when the node
// runs Kubernetes and the agent can read /proc/<pid>/cgroup.
type GPUProcess struct {
	PID          uint32 `json:"pid"`
	UsedMemBytes uint64 `json:"usedMem"`
	PodUID       string `json:"podUid,omitempty"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
}

// Idle reports whether the GPU does no work: utilisation 0 (or unknown on a
// MIG instance) and no compute process. A lost GPU is not idle.
func (s GPUSample) Idle() bool {
	if s.Lost || len(s.Processes) > 0 {
		return false
	}
	return s.GPUUtil == nil || *s.GPUUtil == 0
}

// GPUAlert is the payload of egs.telemetry.v1.alert.<cluster>.<node>.<kind>.
type GPUAlert struct {
	Cluster   string    `json:"cluster"`
	Node      string    `json:"node"`
	UUID      string    `json:"uuid"`
	Kind      string    `json:"kind"`  // power, temperature, xid, ecc
	State     string    `json:"state"` // raised, cleared (power, temperature); raised only for xid, ecc
	Value     float64   `json:"value"` // W, °C, the XID, or the uncorrected ECC count
	Threshold float64   `json:"threshold,omitempty"`
	Workspace string    `json:"workspace,omitempty"`
	GPRID     string    `json:"gprId,omitempty"`
	At        time.Time `json:"at"`
}

// Alert kinds, the last token of TelemetryAlertSubject.
const (
	AlertPower       = "power"
	AlertTemperature = "temperature"
	AlertXID         = "xid"
	AlertECC         = "ecc"
)

// Rollup streams (owner: telemetry), one per resolution, each with its own
// retention. Their subjects are outside EGS_TELEMETRY's.
const (
	StreamTelemetryRollup = "EGS_TELEMETRY_ROLLUP" // prefix; + "_10S", "_1M", "_1H"
	// SubjectTelemetryRollupAll selects the rollups of every resolution.
	SubjectTelemetryRollupAll = "egs.telemetry-rollup.v1.>"
	// DurableTelemetryGPRs is the telemetry service's consumer of GPR
	// events. (Sample batches reach it on a core subscription beside the
	// stream, which it reads only for what the subscription missed.)
	DurableTelemetryGPRs = "telemetry-gprs"
)

// TelemetryRollupSubject is egs.telemetry-rollup.v1.<res>.<cluster>.<node
// token>: the rollups of one node's GPUs over one window of resolution res
// (10s, 1m, 1h).
func TelemetryRollupSubject(res, cluster, node string) (string, error) {
	return build("egs.telemetry-rollup.v1", res, cluster, NodeToken(node))
}

// TelemetryRollupFilter is the subject filter of one resolution's rollups,
// narrowed to one cluster and node when both are given.
func TelemetryRollupFilter(res, cluster, node string) (string, error) {
	switch {
	case cluster == "":
		s, err := build("egs.telemetry-rollup.v1", res)
		return s + ".>", err
	case node == "":
		s, err := build("egs.telemetry-rollup.v1", res, cluster)
		return s + ".*", err
	}
	return TelemetryRollupSubject(res, cluster, node)
}

// RPC subjects of the telemetry service.
const (
	RPCTelemetryLatest  = "egs.rpc.v1.telemetry.latest"
	RPCTelemetrySeries  = "egs.rpc.v1.telemetry.series"
	RPCTelemetryTop     = "egs.rpc.v1.telemetry.top"
	RPCTelemetryMetrics = "egs.rpc.v1.telemetry.metrics"
)

// RollupBatch is the payload of egs.telemetry-rollup.v1.<res>.<cluster>.<node>.
type RollupBatch struct {
	Cluster string       `json:"cluster"`
	Node    string       `json:"node"`
	Res     string       `json:"res"`
	Start   time.Time    `json:"start"` // window [Start, Start+res)
	GPUs    []GPURollup  `json:"gpus"`
	Owner   *GPUOwnerRef `json:"owner,omitempty"` // the GPR holding the node at the window's end
}

// GPUOwnerRef names the GPR (and workspace) a GPU was attributed to.
type GPUOwnerRef struct {
	Workspace string `json:"workspace"`
	GPRID     string `json:"gprId"`
}

// GPURollup is avg/max/min of one GPU's readings over one window.
type GPURollup struct {
	UUID    string `json:"uuid"`
	Samples int    `json:"n"`
	Util    Stat   `json:"util"`
	MemUsed Stat   `json:"memUsed"` // bytes
	PowerW  Stat   `json:"powerW"`
	TempC   Stat   `json:"tempC"`
}

// Stat is avg, max and min of one reading.
type Stat struct {
	Avg float64 `json:"avg"`
	Max float64 `json:"max"`
	Min float64 `json:"min"`
}

// RPCNodeAgentSimLoad sets a simulated node's GPU load (standalone only: the
// fleet of simulated node agents serves it).
const RPCNodeAgentSimLoad = "egs.rpc.v1.nodeagent.sim-load"

// SimLoadRequest is the body of RPCNodeAgentSimLoad. Utilization 0..100 fixes
// every GPU of the node at that load (0 also means no compute processes);
// nil returns the node to its load model. Cluster may be empty when the node
// name is unique.
type SimLoadRequest struct {
	Cluster     string `json:"cluster"`
	Node        string `json:"node"`
	Utilization *int   `json:"utilization"`
}

// SimLoadReply names the node whose load was set.
type SimLoadReply struct {
	Cluster     string `json:"cluster"`
	Node        string `json:"node"`
	GPUs        int    `json:"gpus"`
	Utilization *int   `json:"utilization"`
}

// BucketTelemetryGPRs holds the provisioned GPRs the telemetry service
// attributes GPUs to (owner: telemetry); key = gprId.
const BucketTelemetryGPRs = "EGS_TELEMETRY_GPRS"

// BucketTelemetryState holds the telemetry service's own state (owner:
// telemetry): the checkpoint of the sample batches it has settled.
const BucketTelemetryState = "EGS_TELEMETRY_STATE"

// TelemetryCaller is rpc.Caller (same fields and JSON), repeated here
// because package rpc imports this one; convert with TelemetryCaller(c).
type TelemetryCaller struct {
	Subject    string   `json:"subject"`
	Role       string   `json:"role"`
	Workspace  string   `json:"workspace"`
	Workspaces []string `json:"workspaces,omitempty"`
}

// TelemetryQuery is the body of RPCTelemetryLatest, RPCTelemetryTop and
// RPCTelemetrySeries. Empty filters match everything the caller may see.
type TelemetryQuery struct {
	Caller    TelemetryCaller `json:"caller"`
	Workspace string          `json:"workspace,omitempty"`
	GPRID     string          `json:"gprId,omitempty"`
	Cluster   string          `json:"cluster,omitempty"`
	Node      string          `json:"node,omitempty"`
	UUID      string          `json:"uuid,omitempty"`
	Metric    string          `json:"metric,omitempty"` // top: power, temperature, utilization
	N         int             `json:"n,omitempty"`      // top: how many (default 10)
	Res       string          `json:"res,omitempty"`    // series: 10s, 1m (default), 1h
	From      time.Time       `json:"from,omitzero"`    // series: default To - 1h
	To        time.Time       `json:"to,omitzero"`      // series: default now
}

// TelemetryGPU is the latest reading of one GPU.
type TelemetryGPU struct {
	Cluster    string    `json:"cluster"`
	Node       string    `json:"node"`
	Workspace  string    `json:"workspace,omitempty"`
	GPRID      string    `json:"gprId,omitempty"`
	At         time.Time `json:"at"`
	AgeSeconds float64   `json:"ageSeconds"`
	IdleSince  time.Time `json:"idleSince,omitzero"`
	GPUSample
}

// TelemetryGPUs is the reply of RPCTelemetryLatest and RPCTelemetryTop.
type TelemetryGPUs struct {
	GPUs []TelemetryGPU `json:"gpus"`
}

// TelemetrySeries is the reply of RPCTelemetrySeries: rollup windows, oldest
// first, each narrowed to the GPUs asked for.
type TelemetrySeries struct {
	Res       string        `json:"res"`
	Points    []RollupBatch `json:"points"`
	Truncated bool          `json:"truncated,omitempty"`
}

// TelemetryMetrics is the reply of RPCTelemetryMetrics: the Prometheus text
// exposition of every GPU (dcgm-exporter names).
type TelemetryMetrics struct {
	Text string `json:"text"`
}
