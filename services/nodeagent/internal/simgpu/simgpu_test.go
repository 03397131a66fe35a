package simgpu_test

import (
	"testing"
	"time"

	"github.com/open-egs/egs/services/nodeagent/internal/gpu"
	"github.com/open-egs/egs/services/nodeagent/internal/simgpu"
)

func TestLoadModel(t *testing.T) {
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	n := simgpu.New(simgpu.Spec{Cluster: "worker-1", Node: "w1-h100-0", Product: "NVIDIA-H100-80GB-HBM3", MemoryMiB: 81559, GPUs: 8},
		func() time.Time { return clock })
	s, err := gpu.Open(n.Lib(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		set      func()
		wantIdle bool
		minUtil  uint32
	}{
		{"idle until provisioned", func() {}, true, 0},
		{"provisioned runs the workload", func() { n.SetProvisioned(true) }, false, 55},
		{"fixed 0 is idle even when provisioned", func() { n.SetUtilization(0) }, true, 0},
		{"fixed 100 is hot", func() { n.SetUtilization(100) }, false, 100},
		{"cleared returns to the workload", func() { n.ClearUtilization() }, false, 55},
	}
	for _, tc := range tests {
		tc.set()
		got := s.Sample()
		if len(got) != 8 {
			t.Fatalf("%s: %d samples, want 8", tc.name, len(got))
		}
		for _, g := range got {
			if g.Idle() != tc.wantIdle || *g.GPUUtil < tc.minUtil {
				t.Errorf("%s: GPU %d util %d idle %v, want idle %v and util >= %d", tc.name, g.Index, *g.GPUUtil, g.Idle(), tc.wantIdle, tc.minUtil)
			}
			if g.UUID != simgpu.UUID("worker-1", "w1-h100-0", g.Index) || g.Name != "NVIDIA H100 80GB HBM3" || g.MemTotalBytes != 81559<<20 {
				t.Errorf("%s: GPU %d identity %q %q %d", tc.name, g.Index, g.UUID, g.Name, g.MemTotalBytes)
			}
		}
	}
	n.Lose(3)
	if got := s.Sample(); !got[3].Lost || got[2].Lost {
		t.Errorf("after Lose(3): GPU 3 lost %v, GPU 2 lost %v", got[3].Lost, got[2].Lost)
	}
}
