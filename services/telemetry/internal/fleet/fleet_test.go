package fleet_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/telemetry/internal/fleet"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func p32(v uint32) *uint32 { return &v }

// batch builds a batch of node n at t0+sec with one utilisation per GPU.
func batch(node string, sec int, utils ...uint32) *events.GPUSampleBatch {
	b := &events.GPUSampleBatch{Cluster: "c1", Node: node, At: t0.Add(time.Duration(sec) * time.Second)}
	for i, u := range utils {
		b.GPUs = append(b.GPUs, events.GPUSample{UUID: node + "-gpu" + string(rune('0'+i)), Index: i, Name: "H100",
			GPUUtil: p32(u), PowerMilliW: p32(100_000 + 5_000*u), PowerLimitMW: p32(700_000), TempC: p32(30 + u/2)})
	}
	return b
}

func TestIdleDetection(t *testing.T) {
	type step struct {
		node     string
		sec      int
		utils    []uint32
		wantIdle bool
	}
	tests := map[string]struct {
		timeout time.Duration
		steps   []step
	}{
		"idle for the timeout is reported once": {timeout: 60 * time.Second, steps: []step{
			{"n1", 0, []uint32{0, 0}, false}, {"n2", 0, []uint32{0}, false},
			{"n1", 59, []uint32{0, 0}, false}, {"n2", 59, []uint32{0}, false},
			{"n1", 60, []uint32{0, 0}, true}, {"n2", 61, []uint32{0}, false}, {"n1", 90, []uint32{0, 0}, false},
		}},
		"one busy GPU keeps the GPR": {timeout: 10 * time.Second, steps: []step{
			{"n1", 0, []uint32{0, 0}, false}, {"n2", 0, []uint32{5}, false},
			{"n1", 30, []uint32{0, 0}, false}, {"n2", 30, []uint32{5}, false},
		}},
		"a busy spell starts a new period": {timeout: 10 * time.Second, steps: []step{
			{"n2", 0, []uint32{0}, false}, {"n1", 0, []uint32{0, 0}, false}, {"n1", 10, []uint32{0, 0}, true},
			{"n1", 11, []uint32{50, 0}, false}, {"n1", 12, []uint32{0, 0}, false}, {"n2", 21, []uint32{0}, false},
			{"n1", 22, []uint32{0, 0}, true},
		}},
		"a node never heard from is not idle": {timeout: 10 * time.Second, steps: []step{
			{"n1", 0, []uint32{0, 0}, false}, {"n1", 100, []uint32{0, 0}, false},
		}},
		"no timeout, no report": {steps: []step{
			{"n1", 0, []uint32{0, 0}, false}, {"n2", 0, []uint32{0}, false}, {"n1", 1000, []uint32{0, 0}, false},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := fleet.New(fleet.Config{})
			f.Provision(fleet.GPR{ID: "gpr-1", Workspace: "ws", Cluster: "c1", Nodes: []string{"n1", "n2"},
				IdleTimeout: tc.timeout, ProvisionedAt: t0})
			for i, s := range tc.steps {
				fx := f.Ingest(batch(s.node, s.sec, s.utils...))
				if got := len(fx.Idle) == 1; got != s.wantIdle {
					t.Fatalf("step %d (%s at %ds): idle report %v, want %v", i, s.node, s.sec, fx.Idle, s.wantIdle)
				}
				if s.wantIdle && (fx.Idle[0].GPRID != "gpr-1" || fx.Idle[0].Workspace != "ws" || len(fx.Idle[0].GPUs) != 3) {
					t.Errorf("step %d: report %+v", i, fx.Idle[0])
				}
			}
		})
	}
}

func TestAttribution(t *testing.T) {
	f := fleet.New(fleet.Config{})
	f.Ingest(batch("n1", 0, 10, 20))
	f.Provision(fleet.GPR{ID: "gpr-1", Workspace: "ws", Cluster: "c1", Nodes: []string{"n1"}})
	if got := f.Latest(fleet.Filter{Workspace: "ws"}); len(got) != 2 || got[0].GPRID != "gpr-1" {
		t.Fatalf("after provisioning: %+v", got)
	}
	f.Ingest(batch("n1", 1, 10, 20))
	if got := f.Latest(fleet.Filter{GPRID: "gpr-1"}); len(got) != 2 {
		t.Fatalf("by GPR: %d GPUs, want 2", len(got))
	}
	f.Release("gpr-1")
	if got := f.Latest(fleet.Filter{Workspace: "ws"}); len(got) != 0 {
		t.Errorf("after release the workspace still sees %d GPUs", len(got))
	}
	if top := f.Top(fleet.Filter{}, fleet.MetricUtilization, 1); len(top) != 1 || *top[0].Sample.GPUUtil != 20 {
		t.Errorf("top utilisation = %+v", top)
	}
}

func TestThresholdHysteresis(t *testing.T) {
	// batch: power = 100 + 5*util W (limit 700 W), temperature = 30 + util/2 °C (limit 80 °C); 5 % hysteresis.
	f := fleet.New(fleet.Config{Default: fleet.Thresholds{TempC: 80}, Hysteresis: 0.05})
	var got []string
	for i, u := range []uint32{0, 122, 114, 110, 90, 124} {
		for _, a := range f.Ingest(batch("n1", i, u)).Alerts {
			got = append(got, a.Kind+" "+a.State)
		}
	}
	want := []string{"power raised", "temperature raised", "power cleared", "temperature cleared", "power raised", "temperature raised"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

func TestRollupCascade(t *testing.T) {
	clock := t0
	f := fleet.New(fleet.Config{Rollup: 10 * time.Second, Now: func() time.Time { return clock }})
	f.Provision(fleet.GPR{ID: "gpr-1", Workspace: "ws", Cluster: "c1", Nodes: []string{"n1"}})
	var rollups []events.RollupBatch
	for sec := 0; sec <= 60; sec++ {
		clock = t0.Add(time.Duration(sec) * time.Second)
		rollups = append(rollups, f.Ingest(batch("n1", sec, uint32(sec%10))).Rollups...)
	}
	if len(rollups) != 6 {
		t.Fatalf("10s rollups after 61 s = %d, want 6", len(rollups))
	}
	want := events.RollupBatch{Cluster: "c1", Node: "n1", Res: "10s", Start: t0.Add(20 * time.Second),
		Owner: &events.GPUOwnerRef{Workspace: "ws", GPRID: "gpr-1"},
		GPUs: []events.GPURollup{{UUID: "n1-gpu0", Samples: 10, Util: events.Stat{Avg: 4.5, Max: 9, Min: 0},
			PowerW: events.Stat{Avg: 122.5, Max: 145, Min: 100}, TempC: events.Stat{Avg: 32, Max: 34, Min: 30}}}}
	if diff := cmp.Diff(want, rollups[2]); diff != "" {
		t.Errorf("third 10s rollup (-want +got):\n%s", diff)
	}
	flushed := f.Flush(t0.Add(2*time.Minute), 0)
	if len(flushed) != 2 || flushed[0].Res != "10s" || flushed[1].Res != "1m" {
		t.Fatalf("flushed %+v, want the open 10s window and the first minute", flushed)
	}
	if m := flushed[1]; m.Start != t0 || m.GPUs[0].Samples != 60 || m.GPUs[0].Util != (events.Stat{Avg: 4.5, Max: 9, Min: 0}) {
		t.Errorf("1m rollup = %+v", m)
	}
}

// An XID raises one alert when reported; the GPU keeps it as its last XID
// (dcgm-exporter's DCGM_FI_DEV_XID_ERRORS) after the batch that carried it.
func TestLastXID(t *testing.T) {
	f := fleet.New(fleet.Config{Default: fleet.Thresholds{TempC: 87}, Hysteresis: 0.05})
	b := batch("n1", 0, 10)
	b.GPUs[0].XIDs = []uint64{48, 79}
	var xids []float64
	for _, a := range f.Ingest(b).Alerts {
		if a.Kind == events.AlertXID {
			xids = append(xids, a.Value)
		}
	}
	if diff := cmp.Diff([]float64{48, 79}, xids); diff != "" {
		t.Errorf("xid alerts (-want +got):\n%s", diff)
	}
	if fx := f.Ingest(batch("n1", 1, 10)); len(fx.Alerts) != 0 {
		t.Errorf("alerts of a batch without XIDs: %+v", fx.Alerts)
	}
	if g := f.Latest(fleet.Filter{}); len(g) != 1 || g[0].LastXID != 79 {
		t.Errorf("latest = %+v, want last XID 79", g)
	}
}

// Flush closes a silent node's windows by the node's own clock (its last
// sample's time plus the time since): an agent whose clock lags the
// service's by more than the grace, or a backlog applied all at once after
// a restart, keeps every window whole.
func TestFlushByTheNodesClock(t *testing.T) {
	var clock time.Time
	f := fleet.New(fleet.Config{Rollup: 10 * time.Second, Now: func() time.Time { return clock }})
	count := func(rs []events.RollupBatch, into map[time.Time]int) {
		for _, r := range rs {
			if r.Res == "10s" {
				into[r.Start] += r.GPUs[0].Samples
			}
		}
	}
	// An agent 30 s behind, a batch a second, the service flushing every second.
	windows := map[time.Time]int{}
	for sec := 0; sec < 40; sec++ {
		clock = t0.Add(time.Duration(sec+30) * time.Second)
		count(f.Ingest(batch("lag", sec, 50)).Rollups, windows)
		count(f.Flush(clock, 5*time.Second), windows)
	}
	// A backlog of 40 s applied in four groups at one service time, flushed in between.
	for g := range 4 {
		var bs []*events.GPUSampleBatch
		for sec := 10 * g; sec < 10*g+10; sec++ {
			bs = append(bs, batch("late", sec, 50))
		}
		clock = t0.Add(10 * time.Minute)
		count(f.Ingest(bs...).Rollups, windows)
		count(f.Flush(clock, 5*time.Second), windows)
	}
	for i := range 3 {
		if w := windows[t0.Add(time.Duration(10*i)*time.Second)]; w != 20 { // 10 of each node
			t.Errorf("window %d: %d samples, want 10 from each node", i, w)
		}
	}
	// A node that stops: its last window closes once its clock is past the grace.
	clock = t0.Add(10*time.Minute + 20*time.Second)
	flushed := f.Flush(clock, 5*time.Second)
	late := 0
	for _, r := range flushed {
		if r.Node == "late" && r.Res == "10s" {
			late += r.GPUs[0].Samples
		}
	}
	if late != 10 {
		t.Errorf("silent node's last window flushed with %d samples, want 10", late)
	}
}
