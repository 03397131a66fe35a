package service_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/telemetry/service"
)

// t0 is in the past: series select rollups by the time they were stored.
var t0 = time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)

func config() service.Config {
	var c service.Config
	fs := newFlagSet()
	c.RegisterFlags(fs)
	c.HTTPAddr = ""
	return c
}

// start runs the service until stop is called; stop checks it returned nil.
func start(t *testing.T, nc *nats.Conn, ln net.Listener) (stop func()) {
	return startWith(t, nc, func(d *service.Deps) { d.Listener = ln })
}

// startWith is start with the dependencies adjusted by tune.
func startWith(t *testing.T, nc *nats.Conn, tune func(*service.Deps)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	d := service.Deps{Log: testLog(), Config: config(), NATS: nc, Ready: func() { close(ready) },
		Now: func() time.Time { return t0.Add(2 * time.Minute) }}
	tune(&d)
	go func() { done <- service.Run(ctx, d) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready after 10s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

// scheduler plays the gpr-scheduler: the GPR stream and the get method.
func scheduler(t *testing.T, nc *nats.Conn, js jetstream.JetStream, idle time.Duration) *bus.Publisher {
	t.Helper()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: events.StreamGPR,
		Subjects: []string{events.SubjectGPRAll}}); err != nil {
		t.Fatal(err)
	}
	svc, err := rpc.Serve(nc, "gpr-scheduler", "0.0.1", rpc.Method{Subject: events.RPCGPRGet,
		Handler: rpc.Handle(nil, time.Second, func(_ context.Context, r rpc.GPRRef) (rpc.GPR, error) {
			if r.Caller.Role != "admin" {
				return rpc.GPR{}, rpc.Errorf(rpc.Forbidden, "admin only")
			}
			return rpc.GPR{GPRID: r.GPRID, IdleTimeout: idle, EnforceIdleTimeout: true}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	return bus.NewPublisher(js)
}

func publishGPR(t *testing.T, pub *bus.Publisher, ev events.GPREvent, seq int) {
	t.Helper()
	g := events.GPR{GPRID: "gpr-1", Workspace: "team-a", Event: ev, Seq: seq, Cluster: "c1", Nodes: []string{"n1"}, At: t0}
	subj, _ := events.GPRSubject("team-a", "gpr-1", ev)
	e, _ := bus.NewEvent(fmt.Sprintf("gpr-1.%d", seq), "egs/gpr-scheduler", events.EventType("gpr", string(ev)), "gpr-1", t0, g)
	if err := pub.Publish(context.Background(), subj, e); err != nil {
		t.Fatal(err)
	}
}

// publishSamples publishes the batches of node n1 for seconds from..to, at util.
func publishSamples(t *testing.T, pub *bus.Publisher, from, to int, util uint32) {
	t.Helper()
	var out []bus.Outgoing
	for s := from; s <= to; s++ {
		out = append(out, sampleBatch("n1", s, util, 0))
	}
	if err := pub.PublishBatch(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}

// sampleBatch is the batch of node (cluster c1, boot b, two GPUs) at second
// s (sequence s+1), at util, with the agent's drop count.
func sampleBatch(node string, s int, util uint32, dropped uint64) bus.Outgoing {
	return bootBatch(node, "b", s, uint64(s+1), util, dropped)
}

// bootBatch is sampleBatch of an agent boot, with its sequence.
func bootBatch(node, boot string, s int, seq uint64, util uint32, dropped uint64) bus.Outgoing {
	return atBatch(node, boot, t0.Add(time.Duration(s)*time.Second), seq, util, dropped)
}

// atBatch is bootBatch sampled at at.
func atBatch(node, boot string, at time.Time, seq uint64, util uint32, dropped uint64) bus.Outgoing {
	subj, _ := events.TelemetryGPUSubject("c1", node)
	b := events.GPUSampleBatch{Cluster: "c1", Node: node, Boot: boot, Seq: seq, At: at, Dropped: dropped}
	for i := range 2 {
		u, p, tc := util, uint32(100_000+4000*util), uint32(30+util/2)
		b.GPUs = append(b.GPUs, events.GPUSample{UUID: fmt.Sprintf("GPU-%d", i), Index: i, Name: "NVIDIA H100 80GB HBM3",
			GPUUtil: &u, PowerMilliW: &p, PowerLimitMW: ptr(uint32(700_000)), TempC: &tc, MemTotalBytes: 80 << 30})
	}
	e, _ := bus.NewEvent(fmt.Sprintf("c1.%s.%s.%d", node, boot, seq), "egs/nodeagent", events.EventType("telemetry", "gpu"), node, b.At, b)
	return bus.Outgoing{Subject: subj, Event: e}
}

func ptr[T any](v T) *T { return &v }

var admin = events.TelemetryCaller{Subject: "admin", Role: "admin"}

func latest(t *testing.T, nc *nats.Conn, q events.TelemetryQuery) (events.TelemetryGPUs, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rpc.Call[events.TelemetryGPUs](ctx, nc, events.RPCTelemetryLatest, q)
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range detail {
				what += ": " + d()
			}
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTelemetryService(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, 30*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, nc, ln)

	publishGPR(t, pub, events.GPRProvisioned, 4)
	eventually(t, "GPR attributed", func() bool {
		publishSamples(t, pub, 0, 0, 80)
		g, err := latest(t, nc, events.TelemetryQuery{Caller: admin, GPRID: "gpr-1"})
		return err == nil && len(g.GPUs) == 2
	})
	publishSamples(t, pub, 1, 20, 80) // busy: no idle report
	publishSamples(t, pub, 21, 60, 0) // idle from 21 s; 30 s later (51 s) reported once

	idle, _ := events.TelemetryIdleSubject("team-a", "gpr-1")
	var rep events.GPRIdle
	eventually(t, "idle report", func() bool {
		st, err := js.Stream(context.Background(), events.StreamTelemetry)
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(context.Background(), idle)
		if err != nil {
			return false
		}
		ev, err := bus.ParseEvent(m.Data)
		return err == nil && ev.Decode(&rep) == nil
	})
	if rep.GPRID != "gpr-1" || rep.Workspace != "team-a" || !rep.IdleSince.Equal(t0.Add(21*time.Second)) ||
		!rep.At.Equal(t0.Add(51*time.Second)) || len(rep.GPUs) != 2 {
		t.Errorf("idle report = %+v, want gpr-1 idle since 21s, at 51s, 2 GPUs", rep)
	}

	// Callers bound to a workspace see only theirs.
	tests := map[string]struct {
		q    events.TelemetryQuery
		gpus int
		code rpc.Code
	}{
		"admin sees all":           {q: events.TelemetryQuery{Caller: admin}, gpus: 2},
		"own workspace":            {q: events.TelemetryQuery{Caller: events.TelemetryCaller{Role: "Viewer", Workspace: "team-a"}}, gpus: 2},
		"other workspace, unasked": {q: events.TelemetryQuery{Caller: events.TelemetryCaller{Role: "Viewer", Workspace: "team-b"}}, gpus: 0},
		"other workspace, asked": {q: events.TelemetryQuery{Caller: events.TelemetryCaller{Role: "Viewer", Workspace: "team-b"},
			Workspace: "team-a"}, code: rpc.Forbidden},
		"no caller": {q: events.TelemetryQuery{}, code: rpc.Unauthenticated},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := latest(t, nc, tc.q)
			if tc.code != "" {
				if rpc.CodeOf(err) != tc.code {
					t.Errorf("latest = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || len(got.GPUs) != tc.gpus {
				t.Errorf("latest = %d GPUs, %v; want %d", len(got.GPUs), err, tc.gpus)
			}
		})
	}

	// /metrics over HTTP carries the dcgm-exporter series with our labels.
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	want := `DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-1",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="n1",cluster="c1",workspace="team-a",gpr="gpr-1"} 0`
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s:\n%.600s", want, body)
	}

	// 10s rollups of the first minute (the busy spell averages 80 %).
	var series events.TelemetrySeries
	eventually(t, "10s rollups", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		series, err = rpc.Call[events.TelemetrySeries](ctx, nc, events.RPCTelemetrySeries, events.TelemetryQuery{Caller: admin,
			Res: "10s", GPRID: "gpr-1", UUID: "GPU-0", From: t0, To: t0.Add(time.Minute)})
		return err == nil && len(series.Points) == 6
	}, func() string { return fmt.Sprintf("%d points, %v", len(series.Points), err) })
	if p := series.Points[1]; p.GPUs[0].Util.Avg != 80 || p.GPUs[0].Samples != 10 || p.Owner.GPRID != "gpr-1" {
		t.Errorf("rollup 10s..20s = %+v", p)
	}

	// Stopped for a while: samples published meanwhile are consumed after the restart.
	stop()
	publishSamples(t, pub, 61, 90, 50)
	start(t, nc, nil)
	eventually(t, "samples published while down", func() bool {
		g, err := latest(t, nc, events.TelemetryQuery{Caller: admin, Workspace: "team-a"})
		return err == nil && len(g.GPUs) == 2 && g.GPUs[0].At.Equal(t0.Add(90*time.Second)) && *g.GPUs[0].GPUUtil == 50
	})

	publishGPR(t, pub, events.GPRCompleted, 6)
	eventually(t, "attribution ends", func() bool {
		g, err := latest(t, nc, events.TelemetryQuery{Caller: admin, Workspace: "team-a"})
		return err == nil && len(g.GPUs) == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	top, err := rpc.Call[events.TelemetryGPUs](ctx, nc, events.RPCTelemetryTop, events.TelemetryQuery{Caller: admin, Metric: "power", N: 1})
	if err != nil || len(top.GPUs) != 1 {
		t.Errorf("top = %+v, %v", top, err)
	}
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

func testLog() *slog.Logger {
	if os.Getenv("TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
