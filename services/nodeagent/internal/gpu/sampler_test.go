package gpu_test

import (
	"errors"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/nodeagent/internal/gpu"
)

func p32(v uint32) *uint32 { return &v }
func p64(v uint64) *uint64 { return &v }

// sensors sets every sampled function of a DGX A100 mock device.
func sensors(d *dgxa100.Device, util uint32, procs []nvml.ProcessInfo) {
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: util, Memory: util / 2}, nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 250_000, nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 400_000, nvml.SUCCESS }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 61, nvml.SUCCESS }
	d.GetClockInfoFunc = func(t nvml.ClockType) (uint32, nvml.Return) {
		if t == nvml.CLOCK_SM {
			return 1410, nvml.SUCCESS
		}
		return 1215, nvml.SUCCESS
	}
	d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 4, nvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return procs, nvml.SUCCESS }
	// The v2 call reports the driver's reserve apart from what is used.
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		total, used := d.MemoryInfo.Total, uint64(len(procs))<<30
		return nvml.Memory_v2{Total: total, Reserved: 480 << 20, Used: used, Free: total - used - 480<<20}, nvml.SUCCESS
	}
}

func TestSampleDGXA100(t *testing.T) {
	srv := dgxa100.New()
	for i, d := range srv.Devices {
		var procs []nvml.ProcessInfo
		if i == 0 {
			procs = []nvml.ProcessInfo{{Pid: 42, UsedGpuMemory: 1 << 30}}
		}
		sensors(d.(*dgxa100.Device), uint32(10*i), procs)
	}
	pods := func(pid uint32) (gpu.Pod, bool) {
		return gpu.Pod{UID: "uid-42", Namespace: "team-a", Name: "train-0"}, pid == 42
	}
	s, err := gpu.Open(srv, pods)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	got := s.Sample()
	if len(got) != 8 {
		t.Fatalf("samples = %d, want 8", len(got))
	}
	d0 := srv.Devices[0].(*dgxa100.Device)
	want := events.GPUSample{UUID: d0.UUID, Index: 0, Name: "Mock NVIDIA A100-SXM4-40GB", GPUUtil: p32(0), MemUtil: p32(0),
		MemTotalBytes: 40 << 30, MemUsedBytes: 1 << 30, MemReservedBytes: 480 << 20, PowerMilliW: p32(250_000), PowerLimitMW: p32(400_000), TempC: p32(61),
		SMClockMHz: p32(1410), MemClockMHz: p32(1215), ThrottleReasons: 4,
		Processes: []events.GPUProcess{{PID: 42, UsedMemBytes: 1 << 30, PodUID: "uid-42", PodNamespace: "team-a", PodName: "train-0"}}}
	if diff := cmp.Diff(want, got[0]); diff != "" {
		t.Errorf("GPU 0 (-want +got):\n%s", diff)
	}
	if got[0].Idle() {
		t.Error("GPU 0 has a process but is idle")
	}
	if got[3].GPUUtil == nil || *got[3].GPUUtil != 30 || got[3].Idle() {
		t.Errorf("GPU 3 = %+v, want util 30 and not idle", got[3])
	}
}

func TestGPULost(t *testing.T) {
	srv := dgxa100.New()
	for _, d := range srv.Devices {
		sensors(d.(*dgxa100.Device), 0, nil)
	}
	d1 := srv.Devices[1].(*dgxa100.Device)
	d1.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST }
	s, err := gpu.Open(srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // stays lost without asking NVML again
		got := s.Sample()
		if !got[1].Lost || got[1].UUID != d1.UUID || got[1].GPUUtil != nil || got[1].Idle() {
			t.Errorf("GPU 1 = %+v, want lost, with its UUID and no readings", got[1])
		}
		if got[0].Lost || !got[0].Idle() {
			t.Errorf("GPU 0 = %+v, want present and idle", got[0])
		}
	}
	if n := len(d1.GetMemoryInfo_v2Calls()); n != 1 || len(d1.GetMemoryInfoCalls()) != 0 {
		t.Errorf("memory calls on the lost GPU = %d (v2) and %d (v1), want 1 and 0", n, len(d1.GetMemoryInfoCalls()))
	}
}

func TestMIG(t *testing.T) {
	srv := dgxa100.New()
	for _, d := range srv.Devices {
		sensors(d.(*dgxa100.Device), 0, nil)
	}
	d0 := srv.Devices[0].(*dgxa100.Device)
	d0.MigMode = nvml.DEVICE_MIG_ENABLE
	mig := &mock.Device{
		GetUUIDFunc: func() (string, nvml.Return) { return "MIG-1", nvml.SUCCESS },
		GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{Total: 10 << 30, Used: 1 << 30}, nvml.SUCCESS
		},
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{{Pid: 7, UsedGpuMemory: 1 << 30}}, nvml.SUCCESS
		},
	}
	d0.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	d0.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 0 {
			return mig, nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	s, err := gpu.Open(srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Sample()
	if len(got) != 9 {
		t.Fatalf("samples = %d, want 8 GPUs + 1 MIG instance", len(got))
	}
	if got[0].GPUUtil != nil {
		t.Errorf("MIG-enabled GPU reports utilisation %d; NVML has none", *got[0].GPUUtil)
	}
	want := events.GPUSample{UUID: "MIG-1", Index: 0, Name: got[0].Name, ParentUUID: d0.UUID, MemUsedBytes: 1 << 30,
		MemTotalBytes: 10 << 30, Processes: []events.GPUProcess{{PID: 7, UsedMemBytes: 1 << 30}}}
	if diff := cmp.Diff(want, got[1]); diff != "" {
		t.Errorf("MIG instance (-want +got):\n%s", diff)
	}
	if len(d0.GetUtilizationRatesCalls()) != 0 {
		t.Error("asked NVML for the utilisation of a MIG-enabled GPU")
	}
}

func TestOpenWithoutLibrary(t *testing.T) {
	// Only Init is mocked: any other call would panic, as the real library
	// kills the process when called after a failed Init.
	lib := &mock.Interface{
		InitFunc:        func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND },
		ErrorStringFunc: func(nvml.Return) string { return "not found" },
	}
	_, err := gpu.Open(lib, nil)
	if !errors.Is(err, gpu.ErrNoNVML) {
		t.Fatalf("Open = %v, want ErrNoNVML", err)
	}
	// The real library on this machine: absent, or present (a GPU node).
	if s, err := gpu.Open(nvml.New(), nil); err == nil {
		t.Logf("NVML present: %d GPUs", s.Count())
		_ = s.Close()
	} else if !errors.Is(err, gpu.ErrNoNVML) {
		t.Logf("real NVML: %v", err)
	}
}

func TestPodUIDFromCgroup(t *testing.T) {
	tests := map[string]struct {
		content string
		want    string
		ok      bool
	}{
		"cgroupfs v1": {content: "12:memory:/kubepods/burstable/pod0f2c6a1e-1c2b-4d3e-9f00-123456789abc/3b7c0e\n",
			want: "0f2c6a1e-1c2b-4d3e-9f00-123456789abc", ok: true},
		"systemd v2": {content: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f2c6a1e_1c2b_4d3e_9f00_123456789abc.slice/cri-containerd-1.scope\n",
			want: "0f2c6a1e-1c2b-4d3e-9f00-123456789abc", ok: true},
		"not in a pod": {content: "0::/system.slice/sshd.service\n"},
		"empty":        {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := gpu.PodUIDFromCgroup(tc.content)
			if got != tc.want || ok != tc.ok {
				t.Errorf("PodUIDFromCgroup = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// A driver without nvmlDeviceGetMemoryInfo_v2 gets the v1 call: "used"
// then includes the reserve, and no reserve is reported.
func TestMemoryWithoutV2(t *testing.T) {
	srv := dgxa100.New()
	for _, d := range srv.Devices {
		sensors(d.(*dgxa100.Device), 0, nil)
	}
	d0 := srv.Devices[0].(*dgxa100.Device)
	d0.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND }
	d0.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: 40 << 30, Used: 480 << 20, Free: 40<<30 - 480<<20}, nvml.SUCCESS
	}
	s, err := gpu.Open(srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Sample()
	if g := got[0]; g.MemUsedBytes != 480<<20 || g.MemTotalBytes != 40<<30 || g.MemReservedBytes != 0 || g.Lost {
		t.Errorf("GPU 0 without v2 = used %d total %d reserved %d lost %v, want the v1 reading", g.MemUsedBytes,
			g.MemTotalBytes, g.MemReservedBytes, g.Lost)
	}
	if g := got[1]; g.MemUsedBytes != 0 || g.MemReservedBytes != 480<<20 {
		t.Errorf("GPU 1 with v2 = used %d reserved %d, want 0 and 480 MiB", g.MemUsedBytes, g.MemReservedBytes)
	}
}
