package standalone_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/standalone"
)

// startTuned is start with each service's configuration adjusted by tune.
func startTuned(t *testing.T, dataDir string, tune func(*standalone.Services)) *product {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &product{t: t, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan standalone.Info, 1)
	cfg := standalone.Config{DataDir: dataDir, NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0", BootstrapAPIKey: bootstrapKey}
	go func() {
		p.done <- standalone.Run(ctx, cfg, standalone.Deps{
			Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(i standalone.Info) { ready <- i },
			Tune:  tune,
		})
	}()
	select {
	case p.info = <-ready:
	case err := <-p.done:
		t.Fatalf("standalone stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("standalone not ready within 60s")
	}
	t.Cleanup(func() { p.stop() })
	return p
}

// waitStatus polls GET /api/v1/gpr until the GPR's provisioningStatus is want.
func (p *product) waitStatus(id, want string, within time.Duration) gprView {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		g := p.gpr(id)
		if g.Status.ProvisioningStatus == want {
			return g
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s is %s after %s, want %s", id, g.Status.ProvisioningStatus, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metrics is GET /metrics on the edge: Prometheus text, not an envelope.
func (p *product) metrics() string {
	p.t.Helper()
	req, err := http.NewRequest("GET", "http://"+p.info.HTTPAddr+"/metrics", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// labelValue is the value of label in one exposition line.
func labelValue(line, label string) string {
	_, rest, ok := strings.Cut(line, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// TestIdleRelease drives idle release end to end through the REST API: the
// simulated node agents sample every GPU, the telemetry service attributes
// them to GPRs, and a GPR whose node is set idle through the sim endpoint is
// released with reason idle-timeout by the scheduler, while a GPR whose GPUs
// follow the busy load model, with the same idle timeout, is never released.
// On the way it checks that the REST API serves fresh samples and that
// /metrics carries DCGM_FI_DEV_GPU_UTIL for every simulated GPU.
func TestIdleRelease(t *testing.T) {
	const (
		interval    = 200 * time.Millisecond // node agents' sampling
		idleTimeout = 3 * time.Second
		simGPUs     = 48 // the built-in scenario: 6 nodes of 8 GPUs
	)
	p := startTuned(t, t.TempDir(), func(s *standalone.Services) { s.NodeAgents.Interval = interval })
	p.login()

	ids := map[string]string{}
	for _, ws := range []string{"team-idle", "team-busy"} {
		p.must("POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": ws, "clusters": []string{"worker-1", "worker-2"},
			"namespaces": []string{"ns-" + ws}, "username": "u", "email": "u@example.com"}, nil)
		var created struct {
			GPRID string `json:"gprId"`
		}
		p.must("POST", "/api/v1/gpr", with(with(gprBody(ws, "idle-test"), "enforceIdleTimeOut", true),
			"idleTimeOutDuration", idleTimeout.String()), &created)
		ids[ws] = created.GPRID
	}
	idle := p.waitStatus(ids["team-idle"], "Successful", 30*time.Second)
	busy := p.waitStatus(ids["team-busy"], "Successful", 30*time.Second)
	if len(idle.Status.Nodes) != 1 {
		t.Fatalf("idle GPR holds nodes %v, want one", idle.Status.Nodes)
	}

	// Samples of a provisioned GPR's GPUs are at most 2 s old.
	var latest events.TelemetryGPUs
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.must("GET", "/api/v1/telemetry/gpus?gprId="+ids["team-busy"], nil, &latest)
		fresh := len(latest.GPUs) == 8
		for _, g := range latest.GPUs {
			fresh = fresh && g.AgeSeconds <= 2 && g.GPRID == ids["team-busy"] && g.Workspace == "team-busy"
		}
		if fresh {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("telemetry of %s: %+v, want its 8 GPUs attributed and at most 2 s old", ids["team-busy"], latest.GPUs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// /metrics carries the DCGM-named utilisation of every simulated GPU.
	uuids := map[string]bool{}
	for line := range strings.SplitSeq(p.metrics(), "\n") {
		if strings.HasPrefix(line, "DCGM_FI_DEV_GPU_UTIL{") {
			uuids[labelValue(line, "UUID")] = true
		}
	}
	if len(uuids) != simGPUs {
		t.Errorf("/metrics has DCGM_FI_DEV_GPU_UTIL for %d GPUs, want %d", len(uuids), simGPUs)
	}

	// Idle: utilisation 0 and no processes on every GPU of the node.
	node := idle.Status.Nodes[0]
	var set events.SimLoadReply
	p.must("PUT", "/api/v1/sim/nodes/"+node+"/load", map[string]any{"utilization": 0}, &set)
	if set.GPUs != 8 {
		t.Fatalf("sim load on %s: %+v", node, set)
	}
	t0 := time.Now()
	p.waitStatus(ids["team-idle"], "TimedOut", idleTimeout+20*time.Second)
	took := time.Since(t0)
	t.Logf("idle GPR released %s after its node went idle (idle timeout %s, interval %s)", took.Round(10*time.Millisecond), idleTimeout, interval)
	if took < idleTimeout {
		t.Errorf("released after %s, before its idle timeout %s", took, idleTimeout)
	}
	nc, err := nats.Connect(p.info.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	g, err := rpc.Call[rpc.GPR](context.Background(), nc, events.RPCGPRGet, rpc.GPRRef{Caller: admin, GPRID: ids["team-idle"]})
	if err != nil || g.Reason != "idle-timeout" {
		t.Fatalf("released GPR: reason %q (%v), want idle-timeout", g.Reason, err)
	}

	// The busy GPR outlives twice its idle timeout more.
	time.Sleep(2 * idleTimeout)
	if g := p.gpr(ids["team-busy"]); g.Status.ProvisioningStatus != "Successful" {
		t.Fatalf("busy GPR %s on %v is %s, want Successful", ids["team-busy"], busy.Status.Nodes, g.Status.ProvisioningStatus)
	}
}
