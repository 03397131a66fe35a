// Package gpu reads GPUs through NVML (github.com/NVIDIA/go-nvml): the real
// library on a GPU node, or any other nvml.Interface (the go-nvml mocks, the
// simulator in package simgpu) in tests and in the standalone product.
package gpu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/open-egs/egs/libs/events"
)

// ErrNoNVML is returned by Open when the NVML library is not installed.
var ErrNoNVML = errors.New("NVML library not found (is the NVIDIA driver installed?)")

// PodResolver maps a process to the Kubernetes pod it runs in; ok is false
// when it runs in none (or the agent cannot tell).
type PodResolver func(pid uint32) (p Pod, ok bool)

// Pod identifies a pod.
type Pod struct {
	UID, Namespace, Name string
}

type device struct {
	h     nvml.Device
	uuid  string
	name  string
	index int
	lost  bool
}

// Sampler reads every GPU of one node. Open it, call Sample once per
// interval, Close it at the end. Sample is safe for concurrent use.
type Sampler struct {
	lib  nvml.Interface
	pods PodResolver

	mu      sync.Mutex
	devices []*device
	xids    map[string][]uint64
	events  nvml.EventSet
}

// Open initialises lib and lists its devices. When the library is absent it
// returns an error wrapping ErrNoNVML, and calls nothing else on lib (any
// other call then kills the process).
func Open(lib nvml.Interface, pods PodResolver) (*Sampler, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, fmt.Errorf("nvml init: %w", ErrNoNVML)
		}
		return nil, fmt.Errorf("nvml init: %s", lib.ErrorString(ret))
	}
	s := &Sampler{lib: lib, pods: pods, xids: map[string][]uint64{}}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		_ = lib.Shutdown()
		return nil, fmt.Errorf("nvml device count: %s", lib.ErrorString(ret))
	}
	for i := 0; i < n; i++ {
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			_ = lib.Shutdown()
			return nil, fmt.Errorf("nvml device %d: %s", i, lib.ErrorString(ret))
		}
		d := &device{h: h, index: i}
		if d.uuid, ret = h.GetUUID(); ret != nvml.SUCCESS {
			_ = lib.Shutdown()
			return nil, fmt.Errorf("nvml device %d uuid: %s", i, lib.ErrorString(ret))
		}
		if d.name, ret = h.GetName(); ret != nvml.SUCCESS {
			d.name = "unknown"
		}
		s.devices = append(s.devices, d)
	}
	return s, nil
}

// Count is the number of GPUs found by Open.
func (s *Sampler) Count() int { return len(s.devices) }

// Close shuts NVML down.
func (s *Sampler) Close() error {
	if s.events != nil {
		_ = s.events.Free()
	}
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", s.lib.ErrorString(ret))
	}
	return nil
}

// WatchXIDs registers for critical XID events on every device. It returns
// an error when the devices do not support them; then Sample reports none.
// PollXIDs must then be called regularly (it waits at most timeoutMs).
func (s *Sampler) WatchXIDs() error {
	set, ret := s.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("nvml event set: %s", s.lib.ErrorString(ret))
	}
	registered := 0
	for _, d := range s.devices {
		if ret := d.h.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret == nvml.SUCCESS {
			registered++
		}
	}
	if registered == 0 {
		_ = set.Free()
		return errors.New("no device supports XID events")
	}
	s.events = set
	return nil
}

// PollXIDs waits up to timeoutMs for an XID event and records it for the
// next Sample.
func (s *Sampler) PollXIDs(timeoutMs uint32) {
	if s.events == nil {
		return
	}
	ev, ret := s.events.Wait(timeoutMs)
	if ret != nvml.SUCCESS || ev.EventType != nvml.EventTypeXidCriticalError || ev.Device == nil {
		return
	}
	uuid, ret := ev.Device.GetUUID()
	if ret != nvml.SUCCESS {
		return
	}
	s.mu.Lock()
	s.xids[uuid] = append(s.xids[uuid], ev.EventData)
	s.mu.Unlock()
}

// Sample reads every GPU once. A GPU that fell off the bus is reported with
// Lost set (and stays so: NVML does not bring it back without a reset).
func (s *Sampler) Sample() []events.GPUSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]events.GPUSample, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, s.sample(d)...)
	}
	return out
}

func lost(ret nvml.Return) bool { return ret == nvml.ERROR_GPU_IS_LOST }

func u32(v uint32, ret nvml.Return) *uint32 {
	if ret != nvml.SUCCESS {
		return nil
	}
	return &v
}

func u64(v uint64, ret nvml.Return) *uint64 {
	if ret != nvml.SUCCESS {
		return nil
	}
	return &v
}

// sample reads one physical GPU, and its MIG instances when MIG is on.
func (s *Sampler) sample(d *device) []events.GPUSample {
	g := events.GPUSample{UUID: d.uuid, Index: d.index, Name: d.name}
	if d.lost {
		g.Lost = true
		return []events.GPUSample{g}
	}
	ret := memory(d.h, &g)
	if lost(ret) {
		d.lost = true
		g.Lost = true
		return []events.GPUSample{g}
	}
	migOn := false
	if cur, _, ret := d.h.GetMigMode(); ret == nvml.SUCCESS && cur == nvml.DEVICE_MIG_ENABLE {
		migOn = true
	}
	if !migOn { // NVML has no device-wide utilisation while MIG is on
		if u, ret := d.h.GetUtilizationRates(); ret == nvml.SUCCESS {
			g.GPUUtil, g.MemUtil = &u.Gpu, &u.Memory
		}
	}
	g.PowerMilliW = u32(d.h.GetPowerUsage())
	g.PowerLimitMW = u32(d.h.GetEnforcedPowerLimit())
	g.TempC = u32(d.h.GetTemperature(nvml.TEMPERATURE_GPU))
	g.SMClockMHz = u32(d.h.GetClockInfo(nvml.CLOCK_SM))
	g.MemClockMHz = u32(d.h.GetClockInfo(nvml.CLOCK_MEM))
	g.ECCCorrected = u64(d.h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC))
	g.ECCUncorrected = u64(d.h.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC))
	if r, ret := d.h.GetCurrentClocksEventReasons(); ret == nvml.SUCCESS {
		g.ThrottleReasons = r
	}
	if x := s.xids[d.uuid]; len(x) > 0 {
		g.XIDs = x
		delete(s.xids, d.uuid)
	}
	if !migOn {
		g.Processes = s.processes(d.h)
		return []events.GPUSample{g}
	}
	out := []events.GPUSample{g}
	n, ret := d.h.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return out
	}
	for i := 0; i < n; i++ {
		mh, ret := d.h.GetMigDeviceHandleByIndex(i)
		if ret != nvml.SUCCESS { // slot not populated
			continue
		}
		uuid, ret := mh.GetUUID()
		if ret != nvml.SUCCESS {
			continue
		}
		m := events.GPUSample{UUID: uuid, Index: i, Name: d.name, ParentUUID: d.uuid}
		memory(mh, &m)
		m.Processes = s.processes(mh)
		out = append(out, m)
	}
	return out
}

// memory reads the memory of h into g the way nvidia-smi and DCGM report it:
// in use without the driver's reserve, which nvmlDeviceGetMemoryInfo_v2
// gives apart (on an H100 with driver 580, 480 MiB used by nothing that
// runs). A driver without v2 gets the v1 call, whose "used" includes the
// reserve.
func memory(h nvml.Device, g *events.GPUSample) nvml.Return {
	m2, ret := h.GetMemoryInfo_v2()
	switch ret {
	case nvml.SUCCESS:
		g.MemUsedBytes, g.MemTotalBytes, g.MemReservedBytes = m2.Used, m2.Total, m2.Reserved
		return ret
	case nvml.ERROR_GPU_IS_LOST:
		return ret
	}
	m, ret := h.GetMemoryInfo()
	if ret == nvml.SUCCESS {
		g.MemUsedBytes, g.MemTotalBytes = m.Used, m.Total
	}
	return ret
}

func (s *Sampler) processes(h nvml.Device) []events.GPUProcess {
	ps, ret := h.GetComputeRunningProcesses()
	if ret != nvml.SUCCESS || len(ps) == 0 {
		return nil
	}
	out := make([]events.GPUProcess, 0, len(ps))
	for _, p := range ps {
		gp := events.GPUProcess{PID: p.Pid, UsedMemBytes: p.UsedGpuMemory}
		if s.pods != nil {
			if pod, ok := s.pods(p.Pid); ok {
				gp.PodUID, gp.PodNamespace, gp.PodName = pod.UID, pod.Namespace, pod.Name
			}
		}
		out = append(out, gp)
	}
	return out
}
