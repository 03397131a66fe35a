package realnvml_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	nodeagent "github.com/open-egs/egs/services/nodeagent/service"
	telemetry "github.com/open-egs/egs/services/telemetry/service"
)

const (
	cluster = "device"
	node    = "gpu-node-0"
)

var admin = events.TelemetryCaller{Subject: "real-nvml-test", Role: "admin"}

// TestRealNVML runs the node agent over the real NVML library and the
// telemetry service behind it. Environment:
//
//	EGS_REAL_NVML=1            run at all (skipped otherwise; =sim: over simulated GPUs)
//	EGS_REAL_NVML_OUT=dir      where the readings, /metrics and the logs go (default: a temporary folder)
//	EGS_REAL_NVML_LOAD_PID=pid a process that loads the GPU for a while and then exits: the test waits
//	                           for busy readings with a compute process, then for every GPU to turn idle
func TestRealNVML(t *testing.T) {
	if m := os.Getenv("EGS_REAL_NVML"); m != "1" && m != "sim" {
		t.Skip("set EGS_REAL_NVML=1 on a machine with an NVIDIA GPU and driver (scripts/real-nvml.sh)")
	}
	out := os.Getenv("EGS_REAL_NVML_OUT")
	if out == "" {
		out = t.TempDir()
	}
	loadPID := 0
	if s := os.Getenv("EGS_REAL_NVML_LOAD_PID"); s != "" {
		var err error
		if loadPID, err = strconv.Atoi(s); err != nil {
			t.Fatalf("EGS_REAL_NVML_LOAD_PID=%q: %v", s, err)
		}
	}

	// The count NVML reports, read directly, is what every later step must show.
	// EGS_REAL_NVML=sim runs the same steps over the simulated GPUs, to try the
	// test where there is no GPU.
	sim := os.Getenv("EGS_REAL_NVML") == "sim"
	want := 8
	if !sim {
		lib := nvml.New()
		if ret := lib.Init(); ret != nvml.SUCCESS {
			t.Fatalf("nvml init: %v", lib.ErrorString(ret))
		}
		defer lib.Shutdown()
		var ret nvml.Return
		want, ret = lib.DeviceGetCount()
		if ret != nvml.SUCCESS || want < 1 {
			t.Fatalf("nvml device count = %d, %v", want, lib.ErrorString(ret))
		}
		driver, _ := lib.SystemGetDriverVersion()
		nvmlVersion, _ := lib.SystemGetNVMLVersion()
		t.Logf("NVML %s, driver %s, %d GPU(s)", nvmlVersion, driver, want)
	}

	logFile, err := os.Create(filepath.Join(out, "services.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))

	_, nc, js := natstest.RunJetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The telemetry service waits for the scheduler's GPR stream.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamGPR, Subjects: []string{events.SubjectGPRAll}}); err != nil {
		t.Fatal(err)
	}
	var tc telemetry.Config
	tc.RegisterFlags(flag.NewFlagSet("telemetry", flag.ContinueOnError))
	tc.HTTPAddr = ""
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	ready := make(chan struct{})
	go func() {
		done <- telemetry.Run(ctx, telemetry.Deps{Config: tc, NATS: nc, Log: log.With("service", "telemetry"),
			Listener: ln, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("telemetry stopped before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("telemetry not ready in 20s")
	}
	var ac nodeagent.Config
	ac.RegisterFlags(flag.NewFlagSet("nodeagent", flag.ContinueOnError))
	ac.Cluster, ac.Node = cluster, node
	ac.Simulate, ac.SimGPUs = sim, want
	go func() {
		done <- nodeagent.Run(ctx, nodeagent.Deps{Config: ac, NATS: nc, Log: log.With("service", "nodeagent")})
	}()
	defer func() {
		cancel()
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("service returned %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("a service did not stop within 20s")
			}
		}
	}()

	readings, err := os.Create(filepath.Join(out, "readings.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer readings.Close()
	rw := bufio.NewWriter(readings)
	defer rw.Flush()
	latest := func() []events.TelemetryGPU {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		r, err := rpc.Call[events.TelemetryGPUs](rctx, nc, events.RPCTelemetryLatest, events.TelemetryQuery{Caller: admin})
		if err != nil {
			t.Fatalf("latest: %v", err)
		}
		for _, g := range r.GPUs {
			b, _ := json.Marshal(g)
			rw.Write(append(b, '\n'))
		}
		return r.GPUs
	}
	// waitFor polls the latest readings until ok holds for them.
	waitFor := func(what string, within time.Duration, ok func([]events.TelemetryGPU) bool) []events.TelemetryGPU {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			gs := latest()
			if ok(gs) {
				return gs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s; last readings: %+v", what, within, gs)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	start := time.Now()
	gs := waitFor("every GPU reported", 30*time.Second, func(gs []events.TelemetryGPU) bool { return len(gs) >= want })
	t.Logf("first readings of %d GPU(s) %.1fs after start", len(gs), time.Since(start).Seconds())
	for _, g := range gs {
		checkSane(t, g)
	}
	// Freshness: each reading is at most 2 s old (interval 1 s), checked over 10 polls.
	for range 10 {
		for _, g := range latest() {
			if g.AgeSeconds > 2 {
				t.Errorf("GPU %s: reading %.2fs old, want <= 2s", g.UUID, g.AgeSeconds)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}

	if loadPID > 0 {
		busy := waitFor("a busy GPU with a compute process", 90*time.Second, func(gs []events.TelemetryGPU) bool {
			for _, g := range gs {
				if g.GPUUtil != nil && *g.GPUUtil > 0 && len(g.Processes) > 0 {
					return true
				}
			}
			return false
		})
		for _, g := range busy {
			for _, p := range g.Processes {
				t.Logf("GPU %d busy %d%%: process %d with %d MiB (load process: %d, same: %v)", g.Index, deref(g.GPUUtil),
					p.PID, p.UsedMemBytes>>20, loadPID, int(p.PID) == loadPID)
			}
			if !g.IdleSince.IsZero() {
				t.Errorf("GPU %s busy but idle since %s", g.UUID, g.IdleSince)
			}
		}
		// Wait for the load to end, then for every GPU to turn idle.
		deadline := time.Now().Add(120 * time.Second)
		for alive(loadPID) {
			if time.Now().After(deadline) {
				t.Fatalf("load process %d still running after 120s", loadPID)
			}
			latest()
			time.Sleep(time.Second)
		}
		ended := time.Now()
		idle := waitFor("every GPU idle after the load ended", 30*time.Second, func(gs []events.TelemetryGPU) bool {
			for _, g := range gs {
				if g.IdleSince.IsZero() {
					return false
				}
			}
			return len(gs) >= want
		})
		t.Logf("every GPU idle %.1fs after the load process ended (idle since %s)", time.Since(ended).Seconds(),
			idle[0].IdleSince.Format(time.RFC3339Nano))
	}

	// Rollups: a 10 s window closes once a sample of the next window arrives.
	waitRollup := time.Now().Add(30 * time.Second)
	var series events.TelemetrySeries
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		series, err = rpc.Call[events.TelemetrySeries](rctx, nc, events.RPCTelemetrySeries,
			events.TelemetryQuery{Caller: admin, Res: "10s", Cluster: cluster, Node: node})
		rcancel()
		if err != nil {
			t.Fatalf("series: %v", err)
		}
		if len(series.Points) > 0 || time.Now().After(waitRollup) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(series.Points) == 0 {
		t.Fatal("no 10s rollup window within 30s")
	}
	if b, err := json.MarshalIndent(series, "", " "); err == nil {
		_ = os.WriteFile(filepath.Join(out, "rollups-10s.json"), b, 0o644)
	}
	for _, w := range series.Points {
		if len(w.GPUs) != want {
			t.Errorf("window %s: %d GPUs, want %d", w.Start, len(w.GPUs), want)
		}
		for _, g := range w.GPUs {
			if g.Samples < 1 || g.TempC.Min > g.TempC.Max || g.PowerW.Avg <= 0 {
				t.Errorf("window %s GPU %s: %+v", w.Start, g.UUID, g)
			}
		}
	}
	t.Logf("%d closed 10s window(s)", len(series.Points))

	// /metrics in dcgm-exporter's names, one series per GPU.
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	_ = os.WriteFile(filepath.Join(out, "metrics.txt"), body, 0o644)
	for _, g := range latest() {
		for _, name := range []string{"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE",
			"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_FB_FREE"} {
			if !hasSeries(string(body), name, g.UUID) {
				t.Errorf("/metrics has no %s for %s", name, g.UUID)
			}
		}
	}
}

// alive reports whether the process runs (a zombie, not yet reaped by its
// parent, has ended).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// checkSane checks one reading against what any data-centre GPU reports.
func checkSane(t *testing.T, g events.TelemetryGPU) {
	t.Helper()
	var errs []error
	if !strings.HasPrefix(g.UUID, "GPU-") || g.Name == "" || g.Lost {
		errs = append(errs, fmt.Errorf("identity %q %q lost=%v", g.UUID, g.Name, g.Lost))
	}
	if g.MemTotalBytes == 0 || g.MemUsedBytes+g.MemReservedBytes > g.MemTotalBytes {
		errs = append(errs, fmt.Errorf("memory %d (+%d reserved) of %d", g.MemUsedBytes, g.MemReservedBytes, g.MemTotalBytes))
	}
	if g.GPUUtil == nil || *g.GPUUtil > 100 {
		errs = append(errs, fmt.Errorf("utilisation %v", g.GPUUtil))
	}
	if g.TempC == nil || *g.TempC < 5 || *g.TempC > 110 {
		errs = append(errs, fmt.Errorf("temperature %v", g.TempC))
	}
	if g.PowerMilliW == nil || g.PowerLimitMW == nil || *g.PowerMilliW == 0 || *g.PowerLimitMW == 0 {
		errs = append(errs, fmt.Errorf("power %v limit %v", g.PowerMilliW, g.PowerLimitMW))
	}
	if g.SMClockMHz == nil || g.MemClockMHz == nil || *g.SMClockMHz == 0 || *g.MemClockMHz == 0 {
		errs = append(errs, fmt.Errorf("clocks %v %v", g.SMClockMHz, g.MemClockMHz))
	}
	t.Logf("GPU %d %s %s: util %d%%, mem %d/%d MiB (%d reserved), %.1f/%.0f W, %d C, SM %d MHz, mem %d MHz, ECC %v/%v, throttle %#x",
		g.Index, g.UUID, g.Name, deref(g.GPUUtil), g.MemUsedBytes>>20, g.MemTotalBytes>>20, g.MemReservedBytes>>20,
		float64(deref(g.PowerMilliW))/1000, float64(deref(g.PowerLimitMW))/1000, deref(g.TempC),
		deref(g.SMClockMHz), deref(g.MemClockMHz), derefU64(g.ECCCorrected), derefU64(g.ECCUncorrected), g.ThrottleReasons)
	if err := errors.Join(errs...); err != nil {
		t.Errorf("GPU %d: %v", g.Index, err)
	}
}

// hasSeries reports whether text has a sample of metric labelled with uuid.
func hasSeries(text, metric, uuid string) bool {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, `UUID="`+uuid+`"`) {
			return true
		}
	}
	return false
}

func deref(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

func derefU64(p *uint64) any {
	if p == nil {
		return "n/a"
	}
	return *p
}
