package standalone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"

	"github.com/open-egs/egs/services/standalone"
)

const bootstrapKey = "e2e-bootstrap-key-0123456789abcdef"

// product is a running standalone process for one test.
type product struct {
	t      testing.TB
	info   standalone.Info
	cancel context.CancelFunc
	done   chan error
	token  string
}

func start(t testing.TB, dataDir string) *product {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &product{t: t, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan standalone.Info, 1)
	cfg := standalone.Config{DataDir: dataDir, NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0", BootstrapAPIKey: bootstrapKey}
	go func() {
		p.done <- standalone.Run(ctx, cfg, standalone.Deps{
			Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(i standalone.Info) { ready <- i },
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

func (p *product) stop() {
	p.t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("standalone stopped with %v", err)
		}
	case <-time.After(60 * time.Second):
		p.t.Error("standalone did not stop within 60s")
	}
}

type envelope struct {
	StatusCode int             `json:"statusCode"`
	Status     string          `json:"status"`
	Message    string          `json:"message"`
	Data       json.RawMessage `json:"data"`
	Error      *struct {
		ErrorKey string `json:"errorKey"`
		Message  string `json:"message"`
	} `json:"error"`
}

// call sends body (a string is sent as is, anything else as JSON) and decodes the envelope.
func (p *product) call(method, path string, body any) (int, envelope) {
	p.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+p.info.HTTPAddr+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if p.token != "" && path != "/api/v1/auth" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		p.t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
	}
	if env.StatusCode != resp.StatusCode {
		p.t.Fatalf("%s %s: HTTP %d but statusCode %d", method, path, resp.StatusCode, env.StatusCode)
	}
	return resp.StatusCode, env
}

func (p *product) must(method, path string, body any, out any) {
	p.t.Helper()
	code, env := p.call(method, path, body)
	if code != 200 {
		p.t.Fatalf("%s %s: %d %s", method, path, code, env.Message)
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			p.t.Fatalf("%s %s: decode data: %v", method, path, err)
		}
	}
}

func (p *product) login() {
	p.t.Helper()
	var tok struct{ Token string }
	p.must("POST", "/api/v1/auth", map[string]string{"apiKey": bootstrapKey}, &tok)
	p.token = tok.Token
}

type gprView struct {
	GPRID        string `json:"gprId"`
	EarlyRelease bool   `json:"earlyRelease"`
	Status       struct {
		ProvisioningStatus string   `json:"provisioningStatus"`
		InternalState      string   `json:"internalState"`
		Nodes              []string `json:"nodes"`
		NumGpusAllocated   int      `json:"numGpusAllocated"`
	} `json:"status"`
}

func (p *product) gpr(id string) gprView {
	p.t.Helper()
	var g gprView
	p.must("GET", "/api/v1/gpr?gprId="+id, nil, &g)
	return g
}

// waitGPR polls until the GPR's provisioningStatus/internalState is want.
func (p *product) waitGPR(id, want string, within time.Duration) (gprView, time.Duration) {
	p.t.Helper()
	t0 := time.Now()
	for {
		g := p.gpr(id)
		if g.Status.ProvisioningStatus+"/"+g.Status.InternalState == want {
			return g, time.Since(t0)
		}
		if time.Since(t0) > within {
			p.t.Fatalf("%s is %s/%s after %s, want %s", id, g.Status.ProvisioningStatus, g.Status.InternalState, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gprBody(ws, name string) map[string]any {
	return map[string]any{
		"clusterName": "", "enableAutoClusterSelection": true, "enableAutoGpuSelection": true,
		"enableEviction": nil, "enforceIdleTimeOut": false, "exitDuration": "0d1h0m", "gprName": name,
		"gpuShape": "", "idleTimeOutDuration": nil, "instanceType": "", "memoryPerGpu": 40,
		"numberOfGPUNodes": 1, "numberOfGPUs": 8, "preferredClusters": nil, "priority": 150,
		"requeueOnFailure": nil, "sliceName": ws,
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// eventLog collects GPR events from a plain NATS subscription on egs.gpr.v1.>.
type eventLog struct {
	mu  sync.Mutex
	evs []bus.Event
	sub []string
}

func subscribe(t *testing.T, url string) *eventLog {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := &eventLog{}
	if _, err := nc.Subscribe(events.SubjectGPRAll, func(m *nats.Msg) {
		ev, err := bus.ParseEvent(m.Data)
		if err != nil {
			t.Errorf("undecodable event on %s: %v", m.Subject, err)
			return
		}
		l.mu.Lock()
		l.evs = append(l.evs, ev)
		l.sub = append(l.sub, m.Subject)
		l.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// of returns the event names seen for one GPR, in order of arrival, checking
// the CloudEvents attributes and the subject of each.
func (l *eventLog) of(t *testing.T, ws, id string) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for i, ev := range l.evs {
		if ev.Subject != id {
			continue
		}
		var p events.GPR
		if err := ev.Decode(&p); err != nil {
			t.Fatal(err)
		}
		want, _ := events.GPRSubject(ws, id, p.Event)
		if l.sub[i] != want {
			t.Errorf("event %s on subject %s, want %s", ev.ID, l.sub[i], want)
		}
		if ev.SpecVersion != "1.0" || ev.Source != "egs/gpr-scheduler" || ev.Type != events.EventType("gpr", string(p.Event)) ||
			ev.Time.IsZero() || ev.DataContentType != "application/json" || ev.ID != fmt.Sprintf("%s.%d", id, p.Seq) {
			t.Errorf("event attributes: %+v", ev)
		}
		names = append(names, string(p.Event))
	}
	return names
}

func (l *eventLog) waitFor(t *testing.T, ws, id string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := l.of(t, ws, id)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	evs := subscribe(t, p.info.NATSURL)

	// Every endpoint needs a token.
	if code, _ := p.call("GET", "/api/v1/slice-workspace/list", nil); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}
	p.login()

	p.must("POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "team-a", "clusters": []string{"worker-1"},
		"namespaces": []string{"ns-a"}, "username": "alice", "email": "alice@example.com"}, nil)
	var inv struct {
		ManagedNodes []struct {
			GPUNodeName string `json:"gpuNodeName"`
		} `json:"managedNodes"`
	}
	p.must("GET", "/api/v1/inventory/list", nil, &inv)
	if len(inv.ManagedNodes) != 6 {
		t.Fatalf("inventory lists %d managed nodes, want the scenario's 6", len(inv.ManagedNodes))
	}
	var wsInv struct {
		Items []map[string]any `json:"items"`
	}
	p.must("GET", "/api/v1/inventory?sliceName=team-a", nil, &wsInv)
	if len(wsInv.Items) == 0 {
		t.Fatal("workspace inventory is empty")
	}

	// Bad input: a clear 4xx in the envelope, nothing created.
	bad := map[string]struct {
		body any
		code int
	}{
		"malformed JSON":        {`{"gprName": "x",`, 400},
		"unknown workspace":     {gprBody("nobody", "x"), 404},
		"priority 0":            {with(gprBody("team-a", "x"), "priority", 0), 422},
		"priority 301":          {with(gprBody("team-a", "x"), "priority", 301), 422},
		"exitDuration abc":      {with(gprBody("team-a", "x"), "exitDuration", "abc"), 422},
		"exitDuration empty":    {with(gprBody("team-a", "x"), "exitDuration", ""), 422},
		"wrong type":            {with(gprBody("team-a", "x"), "numberOfGPUs", "eight"), 422},
		"no such shape":         {with(with(gprBody("team-a", "x"), "enableAutoGpuSelection", false), "gpuShape", "B200"), 422},
		"cluster outside":       {with(with(gprBody("team-a", "x"), "enableAutoClusterSelection", false), "clusterName", "worker-2"), 422},
		"more nodes than exist": {with(gprBody("team-a", "x"), "numberOfGPUNodes", 4), 422},
	}
	for name, tc := range bad {
		code, env := p.call("POST", "/api/v1/gpr", tc.body)
		if code != tc.code || env.Error == nil || env.Message == "" || env.Data != nil && string(env.Data) != "null" {
			t.Errorf("%s: %d %+v, want %d with an error envelope", name, code, env, tc.code)
		}
	}
	var list struct {
		Items []gprView `json:"items"`
	}
	p.must("GET", "/api/v1/gpr/list?sliceName=team-a", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("bad input created %d GPRs", len(list.Items))
	}
	_, env := p.call("POST", "/api/v1/gpr", with(gprBody("team-a", "x"), "exitDuration", ""))
	if env.Message != `"exitDuration" is not allowed to be empty` {
		t.Errorf("empty exitDuration message %q", env.Message)
	}

	// First GPR: provisioned.
	var first struct{ GPRID string }
	p.must("POST", "/api/v1/gpr", gprBody("team-a", "first"), &first)
	g, took := p.waitGPR(first.GPRID, "Successful/Provisioned", 10*time.Second)
	t.Logf("created → Successful in %s", took)
	if len(g.Status.Nodes) != 1 || g.Status.NumGpusAllocated != 8 {
		t.Fatalf("provisioned GPR: %+v", g.Status)
	}

	// Second GPR of the same workspace waits while the first holds nodes.
	var second struct{ GPRID string }
	p.must("POST", "/api/v1/gpr", gprBody("team-a", "second"), &second)
	time.Sleep(300 * time.Millisecond) // give the scheduler every chance to get it wrong
	if g := p.gpr(second.GPRID); g.Status.ProvisioningStatus != "Queued" {
		t.Fatalf("second GPR of the workspace is %s while the first holds nodes", g.Status.ProvisioningStatus)
	}

	// Refusals exactly as the contract says.
	code, env := p.call("DELETE", "/api/v1/gpr", map[string]string{"gprId": first.GPRID})
	if code != 409 || env.Message != "Cannot delete GPR in Successful state" {
		t.Errorf("delete provisioned: %d %q", code, env.Message)
	}
	code, env = p.call("PUT", "/api/v1/gpr", map[string]any{"gprId": second.GPRID, "earlyRelease": true})
	if code != 409 || env.Message != "Cannot update early release of GPR in Queued state" {
		t.Errorf("early release of queued: %d %q", code, env.Message)
	}
	if code, _ := p.call("GET", "/api/v1/gpr?gprId=gpr-00000000-0000", nil); code != 404 {
		t.Errorf("unknown gpr: %d, want 404", code)
	}

	// Early release: the first ends EarlyReleased, the second gets its turn.
	p.must("PUT", "/api/v1/gpr", map[string]any{"gprId": first.GPRID, "earlyRelease": true}, nil)
	g, _ = p.waitGPR(first.GPRID, "EarlyReleased/Released", 10*time.Second)
	if !g.EarlyRelease {
		t.Error("earlyRelease is false after early release")
	}
	p.waitGPR(second.GPRID, "Successful/Provisioned", 10*time.Second)

	want := []string{"created", "queued", "admitted", "provisioned", "released", "completed"}
	if got := evs.waitFor(t, "team-a", first.GPRID, len(want)); !slices.Equal(got, want) {
		t.Errorf("events of the first GPR: %v, want %v", got, want)
	}

	// A third GPR is cancelled while queued: it is gone.
	var third struct{ GPRID string }
	p.must("POST", "/api/v1/gpr", gprBody("team-a", "third"), &third)
	p.must("DELETE", "/api/v1/gpr", map[string]string{"gprId": third.GPRID}, nil)
	if code, _ := p.call("GET", "/api/v1/gpr?gprId="+third.GPRID, nil); code != 404 {
		t.Errorf("cancelled GPR: GET %d, want 404", code)
	}

	// A restart keeps workspaces and GPRs, and the provisioned one stays provisioned.
	p.stop()
	p = start(t, dir)
	p.login()
	var wss struct {
		Workspaces []struct{ Name string } `json:"workspaces"`
	}
	p.must("GET", "/api/v1/slice-workspace/list", nil, &wss)
	if len(wss.Workspaces) != 1 || wss.Workspaces[0].Name != "team-a" {
		t.Fatalf("after restart: workspaces %+v", wss.Workspaces)
	}
	if g := p.gpr(first.GPRID); g.Status.ProvisioningStatus != "EarlyReleased" {
		t.Errorf("after restart the first GPR is %s", g.Status.ProvisioningStatus)
	}
	p.waitGPR(second.GPRID, "Successful/Provisioned", 10*time.Second)
}

func TestDeletingAWorkspaceEndsItsGPRs(t *testing.T) {
	p := start(t, t.TempDir())
	p.login()
	p.must("POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "gone", "clusters": []string{"worker-2"},
		"namespaces": []string{"gone"}, "username": "bob", "email": "bob@example.com"}, nil)
	var held, waiting struct{ GPRID string }
	p.must("POST", "/api/v1/gpr", gprBody("gone", "held"), &held)
	p.waitGPR(held.GPRID, "Successful/Provisioned", 10*time.Second)
	p.must("POST", "/api/v1/gpr", gprBody("gone", "waiting"), &waiting)

	p.must("DELETE", "/api/v1/slice-workspace", map[string]string{"workspaceName": "gone"}, nil)
	p.waitGPR(held.GPRID, "Complete/Released", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := p.call("GET", "/api/v1/gpr?gprId="+waiting.GPRID, nil)
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queued GPR of a deleted workspace still answers %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var inv struct {
		ManagedNodes []struct {
			Allocation []any `json:"allocation"`
		} `json:"managedNodes"`
	}
	p.must("GET", "/api/v1/inventory/list", nil, &inv)
	for _, n := range inv.ManagedNodes {
		if len(n.Allocation) != 0 {
			t.Fatalf("a node is still allocated after its workspace was deleted: %+v", n)
		}
	}
}
