// Package simgpu simulates the GPUs of one node for the standalone product
// and tests: the go-nvml mock server (package mock/server, the base of its
// DGX mocks) shaped like a scenario node, whose sensor readings follow a load
// model. A node's GPUs idle until it is provisioned to a GPR; then they run a
// workload pattern, unless a fixed utilisation was set (0 also means no
// compute processes).
//
// The sampled methods are implemented on a wrapper rather than through the
// mock's ...Func fields, because the mocks record every call and would grow
// without bound in a long-running process.
package simgpu

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// Spec is the shape of one simulated node.
type Spec struct {
	Cluster   string
	Node      string
	Product   string // nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3
	MemoryMiB int    // per GPU
	GPUs      int
}

// Node is a simulated node. It is safe for concurrent use.
type Node struct {
	spec Spec
	lib  *server.Server
	now  func() time.Time

	mu          sync.Mutex
	fixed       *uint32
	provisioned bool
	lost        map[int]bool
}

// New builds the node's simulated NVML library; now is the clock of the
// workload pattern (nil: time.Now).
func New(spec Spec, now func() time.Time) *Node {
	if now == nil {
		now = time.Now
	}
	base := baseConfig(spec.Product)
	if spec.Product != "" {
		base.Name = strings.ReplaceAll(spec.Product, "-", " ")
	}
	if spec.MemoryMiB > 0 {
		base.MemoryMB = uint64(spec.MemoryMiB)
	}
	n := &Node{spec: spec, now: now, lost: map[int]bool{}}
	srv := server.NewServerWithGPUs("550.54.15", "12.550.54.15", 12040, gpus.Multiple(spec.GPUs, base)...)
	for i, d := range srv.Devices {
		md := d.(*server.Device)
		md.UUID = UUID(spec.Cluster, spec.Node, i)
		srv.Devices[i] = &device{Device: md, n: n, i: i, limitMW: powerLimitMW(spec.Product)}
	}
	n.lib = srv
	return n
}

// UUID is the stable UUID of GPU i of a simulated node (the mock's own are
// random, which would make every restart look like new hardware).
func UUID(cluster, node string, i int) string {
	h := sha256.Sum256([]byte(cluster + "/" + node + "/" + strconv.Itoa(i)))
	x := hex.EncodeToString(h[:16])
	return "GPU-" + x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func baseConfig(product string) gpus.Config {
	p := strings.ToUpper(product)
	switch {
	case strings.Contains(p, "H200"):
		return gpus.H200_SXM5_141GB
	case strings.Contains(p, "H100"):
		return gpus.H100_SXM5_80GB
	case strings.Contains(p, "B200"):
		return gpus.B200_SXM5_180GB
	case strings.Contains(p, "A30"):
		return gpus.A30_PCIE_24GB
	}
	return gpus.A100_SXM4_40GB
}

// powerLimitMW is the board power limit of the product (SXM parts).
func powerLimitMW(product string) uint32 {
	p := strings.ToUpper(product)
	switch {
	case strings.Contains(p, "B200"):
		return 1_000_000
	case strings.Contains(p, "H100"), strings.Contains(p, "H200"):
		return 700_000
	case strings.Contains(p, "A30"):
		return 165_000
	}
	return 400_000
}

// Lib is the node's NVML library.
func (n *Node) Lib() nvml.Interface { return n.lib }

// Spec is the node's shape.
func (n *Node) Spec() Spec { return n.spec }

// SetUtilization fixes every GPU's utilisation at u percent (clamped to
// 0..100); 0 also removes the compute processes.
func (n *Node) SetUtilization(u int) {
	v := uint32(min(max(u, 0), 100))
	n.mu.Lock()
	n.fixed = &v
	n.mu.Unlock()
}

// ClearUtilization returns the node to the load model.
func (n *Node) ClearUtilization() {
	n.mu.Lock()
	n.fixed = nil
	n.mu.Unlock()
}

// SetProvisioned says whether the node is held by a GPR (its GPUs then run
// the workload pattern).
func (n *Node) SetProvisioned(p bool) {
	n.mu.Lock()
	n.provisioned = p
	n.mu.Unlock()
}

// Provisioned reports what SetProvisioned last said.
func (n *Node) Provisioned() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.provisioned
}

// Lose makes GPU i fall off the bus: every later NVML call on it returns
// ERROR_GPU_IS_LOST.
func (n *Node) Lose(i int) {
	n.mu.Lock()
	n.lost[i] = true
	n.mu.Unlock()
}

// state is what one GPU does now.
func (n *Node) state(i int) (util uint32, procs bool, lost bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lost[i] {
		return 0, false, true
	}
	if n.fixed != nil {
		return *n.fixed, *n.fixed > 0, false
	}
	if !n.provisioned {
		return 0, false, false
	}
	// A training-like pattern: 55..95 % over a 2-minute cycle, each GPU phase-shifted.
	t := float64(n.now().UnixMilli()) / 1000
	u := 75 + 20*math.Sin(2*math.Pi*t/120+float64(i))
	return uint32(math.Round(u)), true, false
}

// device overrides the sampled methods of one mock device.
type device struct {
	*server.Device
	n       *Node
	i       int
	limitMW uint32
}

func (d *device) GetUUID() (string, nvml.Return) { return d.UUID, nvml.SUCCESS }
func (d *device) GetName() (string, nvml.Return) { return d.Config.Name, nvml.SUCCESS }
func (d *device) GetMigMode() (int, int, nvml.Return) {
	return nvml.DEVICE_MIG_DISABLE, nvml.DEVICE_MIG_DISABLE, nvml.SUCCESS
}

func (d *device) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	u, _, lost := d.n.state(d.i)
	if lost {
		return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
	}
	return nvml.Utilization{Gpu: u, Memory: u * 6 / 10}, nvml.SUCCESS
}

// reservedMiB is what the driver keeps of an H100's memory (seen with
// driver 580): nvmlDeviceGetMemoryInfo_v2 reports it apart from "used".
const reservedMiB = 480

func (d *device) GetMemoryInfo_v2() (nvml.Memory_v2, nvml.Return) {
	_, procs, lost := d.n.state(d.i)
	if lost {
		return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST
	}
	total, reserved := d.Config.MemoryMB<<20, uint64(reservedMiB)<<20
	used := uint64(0)
	if procs {
		used = total * 6 / 10
	}
	return nvml.Memory_v2{Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2), Total: total, Reserved: reserved, Used: used,
		Free: total - reserved - used}, nvml.SUCCESS
}

// GetMemoryInfo is the v1 call, whose "used" includes the reserve.
func (d *device) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	m, ret := d.GetMemoryInfo_v2()
	return nvml.Memory{Total: m.Total, Used: m.Used + m.Reserved, Free: m.Free}, ret
}

func (d *device) GetPowerUsage() (uint32, nvml.Return) {
	u, _, lost := d.n.state(d.i)
	if lost {
		return 0, nvml.ERROR_GPU_IS_LOST
	}
	idle := d.limitMW / 10
	return idle + (d.limitMW-idle)*u/100, nvml.SUCCESS
}

func (d *device) GetEnforcedPowerLimit() (uint32, nvml.Return) { return d.limitMW, nvml.SUCCESS }

func (d *device) GetTemperature(nvml.TemperatureSensors) (uint32, nvml.Return) {
	u, _, lost := d.n.state(d.i)
	if lost {
		return 0, nvml.ERROR_GPU_IS_LOST
	}
	return 32 + u*6/10, nvml.SUCCESS // 32 °C idle, 92 °C flat out
}

func (d *device) GetClockInfo(t nvml.ClockType) (uint32, nvml.Return) {
	u, _, lost := d.n.state(d.i)
	if lost {
		return 0, nvml.ERROR_GPU_IS_LOST
	}
	if t == nvml.CLOCK_MEM {
		return 2619, nvml.SUCCESS
	}
	if u == 0 {
		return 345, nvml.SUCCESS
	}
	return 1980, nvml.SUCCESS
}

func (d *device) GetTotalEccErrors(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
	return 0, nvml.SUCCESS
}

func (d *device) GetCurrentClocksEventReasons() (uint64, nvml.Return) {
	u, _, _ := d.n.state(d.i)
	if u == 0 {
		return nvml.ClocksEventReasonGpuIdle, nvml.SUCCESS
	}
	return 0, nvml.SUCCESS
}

func (d *device) GetComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	_, procs, lost := d.n.state(d.i)
	if lost {
		return nil, nvml.ERROR_GPU_IS_LOST
	}
	if !procs {
		return nil, nvml.SUCCESS
	}
	return []nvml.ProcessInfo{{Pid: uint32(4000 + d.i), UsedGpuMemory: (d.Config.MemoryMB << 20) * 6 / 10}}, nvml.SUCCESS
}
