package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
)

func ptr[T any](v T) *T { return &v }

var (
	owner  = rpc.Caller{Subject: "k-owner", Role: "Owner"}
	admin  = rpc.Caller{Subject: "admin", Role: "admin"}
	editor = rpc.Caller{Subject: "k-editor", Role: "Editor", Workspace: "team-a"}
	viewer = rpc.Caller{Subject: "k-viewer", Role: "Viewer", Workspace: "team-a"}
)

func createWorkspace(t *testing.T, nc *nats.Conn, name string, clusters ...string) {
	t.Helper()
	if _, err := call[rpc.Workspace](t, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
		Name: name, Clusters: clusters, Username: "u", Email: "e@x"}); err != nil {
		t.Fatalf("create workspace %s: %v", name, err)
	}
}

func TestPolicy(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	registerClusters(t, js, "worker-1")
	start(t, nc)
	createWorkspace(t, nc, "team-a", "worker-1")

	policy := rpc.Policy{AllowedShapes: []string{"Tesla-T4", "n1-highcpu-2"}, MaxGPUsPerGPR: 8, MaxMemoryPerGPU: 80,
		MaxQueuedGPRs: 3, MaxExitDuration: 48 * time.Hour, MinPriority: 50, MaxPriority: 200,
		AutoEviction: ptr(false), RequeueOnFailure: ptr(true)}
	got, err := call[rpc.Workspace](t, nc, events.RPCWorkspacePolicy, rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a", Policy: policy})
	if err != nil {
		t.Fatalf("set policy: %v", err)
	}
	if diff := cmp.Diff(policy, got.Policy); diff != "" {
		t.Errorf("set policy reply (-want +got):\n%s", diff)
	}
	got, err = call[rpc.Workspace](t, nc, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(policy, got.Policy); diff != "" {
		t.Errorf("get: policy (-want +got):\n%s", diff)
	}
	l, err := call[rpc.WorkspaceList](t, nc, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{})
	if err != nil || len(l.Workspaces) != 1 {
		t.Fatalf("list = %v, %v", l, err)
	}
	if diff := cmp.Diff(policy, l.Workspaces[0].Policy); diff != "" {
		t.Errorf("list: policy (-want +got):\n%s", diff)
	}

	// The admin token may set it too; a zero policy lifts every limit.
	if _, err := call[rpc.Workspace](t, nc, events.RPCWorkspacePolicy, rpc.SetPolicyRequest{Caller: admin, Workspace: "team-a"}); err != nil {
		t.Fatalf("admin sets the zero policy: %v", err)
	}
	got, _ = call[rpc.Workspace](t, nc, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: "team-a"})
	if diff := cmp.Diff(rpc.Policy{AllowedShapes: []string{}}, got.Policy); diff != "" {
		t.Errorf("zero policy (-want +got):\n%s", diff)
	}

	failures := map[string]struct {
		req  rpc.SetPolicyRequest
		code rpc.Code
	}{
		"editor":            {rpc.SetPolicyRequest{Caller: editor, Workspace: "team-a"}, rpc.Forbidden},
		"viewer":            {rpc.SetPolicyRequest{Caller: viewer, Workspace: "team-a"}, rpc.Forbidden},
		"no caller":         {rpc.SetPolicyRequest{Workspace: "team-a"}, rpc.Forbidden},
		"unknown workspace": {rpc.SetPolicyRequest{Caller: owner, Workspace: "nope"}, rpc.NotFound},
		"invalid name":      {rpc.SetPolicyRequest{Caller: owner, Workspace: "No.pe"}, rpc.NotFound},
		"min priority 0 is no limit, 301 is not": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MinPriority: 301}}, rpc.Invalid},
		"negative max priority": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MaxPriority: -1}}, rpc.Invalid},
		"min above max": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MinPriority: 201, MaxPriority: 200}}, rpc.Invalid},
		"negative gpus": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MaxGPUsPerGPR: -1}}, rpc.Invalid},
		"negative memory": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MaxMemoryPerGPU: -1}}, rpc.Invalid},
		"negative queued": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MaxQueuedGPRs: -1}}, rpc.Invalid},
		"negative exit duration": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MaxExitDuration: -time.Second}}, rpc.Invalid},
		"exit duration over 366 days": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{MaxExitDuration: 367 * 24 * time.Hour}}, rpc.Invalid},
		"blank shape": {rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
			Policy: rpc.Policy{AllowedShapes: []string{" "}}}, rpc.Invalid},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			_, err := call[rpc.Workspace](t, nc, events.RPCWorkspacePolicy, tc.req)
			wantCode(t, err, tc.code)
		})
	}
	if _, err := call[rpc.Workspace](t, nc, events.RPCWorkspacePolicy, rpc.SetPolicyRequest{Caller: owner, Workspace: "team-a",
		Policy: rpc.Policy{MinPriority: 300, MaxPriority: 300, MaxExitDuration: 366 * 24 * time.Hour}}); err != nil {
		t.Errorf("policy at the bounds: %v", err)
	}

	// The events: created, then one policy-updated per change, each with the whole policy.
	type policyEvent struct {
		Subject, Type, CESubject string
		Keys                     []string
		Data                     struct {
			Workspace string     `json:"workspace"`
			Policy    rpc.Policy `json:"policy"`
			At        time.Time  `json:"at"`
		}
	}
	var got2 []policyEvent
	for _, m := range streamEvents(t, js) {
		if m.Subject() == "egs.workspace.v1.team-a.created" {
			continue
		}
		ev, err := bus.ParseEvent(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		var pe policyEvent
		pe.Subject, pe.Type, pe.CESubject = m.Subject(), ev.Type, ev.Subject
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(ev.Data, &raw); err != nil {
			t.Fatal(err)
		}
		for k := range raw {
			pe.Keys = append(pe.Keys, k)
		}
		if err := ev.Decode(&pe.Data); err != nil {
			t.Fatal(err)
		}
		got2 = append(got2, pe)
	}
	if len(got2) != 3 {
		t.Fatalf("got %d policy events, want 3: %+v", len(got2), got2)
	}
	first := got2[0]
	if first.Subject != "egs.workspace.v1.team-a.policy-updated" || first.Type != "io.egs.workspace.policy-updated.v1" ||
		first.CESubject != "team-a" || first.Data.Workspace != "team-a" || !first.Data.At.Equal(now) {
		t.Errorf("policy event = %+v", first)
	}
	if diff := cmp.Diff(policy, first.Data.Policy); diff != "" {
		t.Errorf("policy event payload (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"at", "policy", "workspace"}, slices.Sorted(slices.Values(first.Keys))); diff != "" {
		t.Errorf("policy event keys (-want +got):\n%s", diff)
	}

	// The workspace, its revision moved by the policy, still deletes.
	if _, err := call[rpc.Empty](t, nc, events.RPCWorkspaceDelete, rpc.WorkspaceRef{Name: "team-a"}); err != nil {
		t.Fatalf("delete after policy: %v", err)
	}
}

// TestRepublishesPolicy plays a crash between storing a policy and
// publishing its event: Run publishes it at start-up, once, even when run twice.
func TestRepublishesPolicy(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces, History: 1,
		Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	rec := `{"name":"ws","clusters":["c1"],"namespaces":["ws"],"username":"u","email":"e@x",` +
		`"createdAt":"2026-11-27T12:00:00Z","policy":{"allowedShapes":[],"maxGpusPerGpr":4},` +
		`"published":true,"policyPending":true,"policyAt":"2026-11-27T11:00:00Z"}`
	rev, err := kv.Create(ctx, "ws", []byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		t.Run(fmt.Sprintf("run %d", i+1), func(t *testing.T) { start(t, nc) })
	}
	msgs := streamEvents(t, js)
	if len(msgs) != 1 {
		t.Fatalf("stream has %d events, want 1", len(msgs))
	}
	ev, err := bus.ParseEvent(msgs[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("ws.ws.policy-updated.%d", rev); ev.ID != want || msgs[0].Subject() != "egs.workspace.v1.ws.policy-updated" ||
		!ev.Time.Equal(time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("event %s on %s at %s, want %s on egs.workspace.v1.ws.policy-updated", ev.ID, msgs[0].Subject(), ev.Time, want)
	}
	e, err := kv.Get(ctx, "ws")
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		PolicyPending bool       `json:"policyPending"`
		Policy        rpc.Policy `json:"policy"`
	}
	if err := json.Unmarshal(e.Value(), &stored); err != nil || stored.PolicyPending || stored.Policy.MaxGPUsPerGPR != 4 {
		t.Errorf("record after recovery = %s (err %v), want the policy kept and not pending", e.Value(), err)
	}
}

// t1 is the template of the contract's §7.1 example.
var t1 = rpc.Template{Name: "t1", ClusterName: "worker-1", GPUShape: "T4", InstanceType: "n1", ExitDuration: "0d0h5m",
	NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 201, MemoryPerGPU: 15, EnforceIdleTimeOut: true,
	IdleTimeOutDuration: "0d0h2m", EnableEviction: true}

func TestTemplates(t *testing.T) {
	_, nc, _ := natstest.RunJetStream(t)
	start(t, nc)

	empty, err := call[[]rpc.Template](t, nc, events.RPCTemplateList, rpc.Empty{})
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("list of none = %#v, %v; want [] (not null)", empty, err)
	}

	got, err := call[rpc.Template](t, nc, events.RPCTemplateCreate, t1)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	stored := t1
	stored.ExitDuration, stored.IdleTimeOutDuration = "0h5m0s", "0h2m0s" // normalised (D8)
	if diff := cmp.Diff(stored, got); diff != "" {
		t.Errorf("create reply (-want +got):\n%s", diff)
	}
	_, err = call[rpc.Template](t, nc, events.RPCTemplateCreate, t1)
	wantCode(t, err, rpc.Conflict)

	edit := func(f func(*rpc.Template)) rpc.Template {
		c := t1
		c.Name = "t-new"
		f(&c)
		return c
	}
	invalid := map[string]rpc.Template{
		"name not a DNS label":      edit(func(c *rpc.Template) { c.Name = "T_1" }),
		"empty name":                edit(func(c *rpc.Template) { c.Name = "" }),
		"bad cluster":               edit(func(c *rpc.Template) { c.ClusterName = "a.b" }),
		"priority 0":                edit(func(c *rpc.Template) { c.Priority = 0 }),
		"priority 301":              edit(func(c *rpc.Template) { c.Priority = 301 }),
		"no gpus":                   edit(func(c *rpc.Template) { c.NumberOfGPUs = 0 }),
		"no nodes":                  edit(func(c *rpc.Template) { c.NumberOfGPUNodes = 0 }),
		"negative memory":           edit(func(c *rpc.Template) { c.MemoryPerGPU = -1 }),
		"empty exit duration":       edit(func(c *rpc.Template) { c.ExitDuration = "" }),
		"bad exit duration":         edit(func(c *rpc.Template) { c.ExitDuration = "5 minutes" }),
		"zero exit duration":        edit(func(c *rpc.Template) { c.ExitDuration = "0d0h0m" }),
		"exit duration over a year": edit(func(c *rpc.Template) { c.ExitDuration = "367d" }),
		"enforced without idle":     edit(func(c *rpc.Template) { c.IdleTimeOutDuration = "" }),
		"bad idle duration":         edit(func(c *rpc.Template) { c.IdleTimeOutDuration = "soon" }),
	}
	for name, req := range invalid {
		t.Run("create "+name, func(t *testing.T) {
			_, err := call[rpc.Template](t, nc, events.RPCTemplateCreate, req)
			wantCode(t, err, rpc.Invalid)
		})
	}

	// Without enforceIdleTimeOut a duration sent anyway is dropped; Go syntax is accepted.
	t2 := rpc.Template{Name: "t2", GPUShape: "H100", ExitDuration: "1h30m", NumberOfGPUs: 8, NumberOfGPUNodes: 2,
		Priority: 100, IdleTimeOutDuration: "0d0h9m", RequeueOnFailure: true}
	got, err = call[rpc.Template](t, nc, events.RPCTemplateCreate, t2)
	if err != nil {
		t.Fatalf("create t2: %v", err)
	}
	storedT2 := t2
	storedT2.ExitDuration, storedT2.IdleTimeOutDuration = "1h30m0s", ""
	if diff := cmp.Diff(storedT2, got); diff != "" {
		t.Errorf("create t2 reply (-want +got):\n%s", diff)
	}

	got, err = call[rpc.Template](t, nc, events.RPCTemplateGet, rpc.WorkspaceRef{Name: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stored, got); diff != "" {
		t.Errorf("get (-want +got):\n%s", diff)
	}
	for _, name := range []string{"nope", "Bad.Name", ""} {
		_, err = call[rpc.Template](t, nc, events.RPCTemplateGet, rpc.WorkspaceRef{Name: name})
		wantCode(t, err, rpc.NotFound)
	}
	all, err := call[[]rpc.Template](t, nc, events.RPCTemplateList, rpc.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]rpc.Template{stored, storedT2}, all); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	// Updates replace the template; D10: enforceIdleTimeOut true without a
	// duration keeps the stored one, and is invalid when none is stored.
	updates := []struct {
		name     string
		req      rpc.Template
		code     rpc.Code // "" = success
		wantIdle string
	}{
		{"unknown", edit(func(c *rpc.Template) { c.Name = "ghost" }), rpc.NotFound, ""},
		{"keeps stored idle", func() rpc.Template { c := t1; c.IdleTimeOutDuration = ""; c.Priority = 250; return c }(), "", "0h2m0s"},
		{"new idle", func() rpc.Template { c := t1; c.IdleTimeOutDuration = "1h"; return c }(), "", "1h0m0s"},
		{"invalid", func() rpc.Template { c := t1; c.NumberOfGPUs = 0; return c }(), rpc.Invalid, ""},
		{"no stored idle to keep", func() rpc.Template { c := t2; c.EnforceIdleTimeOut = true; c.IdleTimeOutDuration = ""; return c }(), rpc.Invalid, ""},
		{"not enforced drops idle", func() rpc.Template { c := t1; c.EnforceIdleTimeOut = false; return c }(), "", ""},
	}
	for _, tc := range updates {
		got, err := call[rpc.Template](t, nc, events.RPCTemplateUpdate, tc.req)
		if tc.code != "" {
			wantCode(t, err, tc.code)
			continue
		}
		if err != nil {
			t.Fatalf("update %s: %v", tc.name, err)
		}
		read, err := call[rpc.Template](t, nc, events.RPCTemplateGet, rpc.WorkspaceRef{Name: tc.req.Name})
		if err != nil {
			t.Fatal(err)
		}
		if got.IdleTimeOutDuration != tc.wantIdle || read != got {
			t.Errorf("update %s: reply %+v, stored %+v, want idle %q", tc.name, got, read, tc.wantIdle)
		}
	}
	if got, _ := call[rpc.Template](t, nc, events.RPCTemplateGet, rpc.WorkspaceRef{Name: "t1"}); got.Priority != 201 {
		t.Errorf("after updates priority = %d, want 201 (full replacement)", got.Priority)
	}

	if _, err := call[rpc.Empty](t, nc, events.RPCTemplateDelete, rpc.WorkspaceRef{Name: "t2"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = call[rpc.Empty](t, nc, events.RPCTemplateDelete, rpc.WorkspaceRef{Name: "t2"})
	wantCode(t, err, rpc.NotFound)
	_, err = call[rpc.Template](t, nc, events.RPCTemplateGet, rpc.WorkspaceRef{Name: "t2"})
	wantCode(t, err, rpc.NotFound)
}

func TestBindings(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	registerClusters(t, js, "worker-1", "worker-2", "worker-3")
	start(t, nc)
	createWorkspace(t, nc, "team-a", "worker-1", "worker-2")
	createWorkspace(t, nc, "team-b", "worker-3")
	for _, name := range []string{"t1", "t2"} {
		tpl := t1
		tpl.Name = name
		if _, err := call[rpc.Template](t, nc, events.RPCTemplateCreate, tpl); err != nil {
			t.Fatal(err)
		}
	}

	empty, err := call[[]rpc.Binding](t, nc, events.RPCBindingList, rpc.Empty{})
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("list of none = %#v, %v; want [] (not null)", empty, err)
	}

	b := rpc.Binding{Name: "team-a", EnableAutoGPR: true, Clusters: []rpc.BindingCluster{
		{ClusterName: "worker-1", DefaultTemplateName: "t1", Templates: []string{"t1", "t2"}},
		{ClusterName: "worker-2", Templates: nil}, // null templates are []
	}}
	want := b
	want.Clusters = []rpc.BindingCluster{b.Clusters[0], {ClusterName: "worker-2", Templates: []string{}}}
	got, err := call[rpc.Binding](t, nc, events.RPCBindingCreate, b)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("create reply (-want +got):\n%s", diff)
	}
	_, err = call[rpc.Binding](t, nc, events.RPCBindingCreate, b)
	wantCode(t, err, rpc.Conflict)

	bad := func(ws string, clusters ...rpc.BindingCluster) rpc.Binding {
		return rpc.Binding{Name: ws, Clusters: clusters}
	}
	failures := map[string]struct {
		req  rpc.Binding
		code rpc.Code
	}{
		"unknown workspace":       {bad("nope"), rpc.NotFound},
		"invalid workspace name":  {bad("No.pe"), rpc.NotFound},
		"cluster outside":         {bad("team-b", rpc.BindingCluster{ClusterName: "worker-1"}), rpc.Invalid},
		"unregistered cluster":    {bad("team-b", rpc.BindingCluster{ClusterName: "worker-9"}), rpc.Invalid},
		"empty cluster name":      {bad("team-b", rpc.BindingCluster{}), rpc.Invalid},
		"cluster twice":           {bad("team-b", rpc.BindingCluster{ClusterName: "worker-3"}, rpc.BindingCluster{ClusterName: "worker-3"}), rpc.Invalid},
		"unknown template":        {bad("team-b", rpc.BindingCluster{ClusterName: "worker-3", Templates: []string{"t1", "t9"}}), rpc.Invalid},
		"unknown default":         {bad("team-b", rpc.BindingCluster{ClusterName: "worker-3", DefaultTemplateName: "t9"}), rpc.Invalid},
		"template twice":          {bad("team-b", rpc.BindingCluster{ClusterName: "worker-3", Templates: []string{"t1", "t1"}}), rpc.Invalid},
		"template name not a DNS": {bad("team-b", rpc.BindingCluster{ClusterName: "worker-3", Templates: []string{"T 1"}}), rpc.Invalid},
	}
	for name, tc := range failures {
		t.Run("create "+name, func(t *testing.T) {
			_, err := call[rpc.Binding](t, nc, events.RPCBindingCreate, tc.req)
			wantCode(t, err, tc.code)
		})
	}

	got, err = call[rpc.Binding](t, nc, events.RPCBindingGet, rpc.WorkspaceRef{Name: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("get (-want +got):\n%s", diff)
	}
	_, err = call[rpc.Binding](t, nc, events.RPCBindingGet, rpc.WorkspaceRef{Name: "team-b"})
	wantCode(t, err, rpc.NotFound)

	// Update: 404 without a binding, the same checks as create, then a full replacement.
	_, err = call[rpc.Binding](t, nc, events.RPCBindingUpdate, bad("team-b", rpc.BindingCluster{ClusterName: "worker-3"}))
	wantCode(t, err, rpc.NotFound)
	_, err = call[rpc.Binding](t, nc, events.RPCBindingUpdate, bad("team-a", rpc.BindingCluster{ClusterName: "worker-3"}))
	wantCode(t, err, rpc.Invalid)
	upd := rpc.Binding{Name: "team-a", Clusters: []rpc.BindingCluster{{ClusterName: "worker-2", DefaultTemplateName: "t2", Templates: []string{"t2"}}}}
	if got, err = call[rpc.Binding](t, nc, events.RPCBindingUpdate, upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	if diff := cmp.Diff(upd, got); diff != "" {
		t.Errorf("update reply (-want +got):\n%s", diff)
	}

	// A template in use cannot be deleted; t1 is no longer used.
	_, err = call[rpc.Empty](t, nc, events.RPCTemplateDelete, rpc.WorkspaceRef{Name: "t2"})
	wantCode(t, err, rpc.Conflict)
	if _, err := call[rpc.Empty](t, nc, events.RPCTemplateDelete, rpc.WorkspaceRef{Name: "t1"}); err != nil {
		t.Errorf("delete unused template: %v", err)
	}

	bBinding := bad("team-b", rpc.BindingCluster{ClusterName: "worker-3", Templates: []string{"t2"}})
	if _, err := call[rpc.Binding](t, nc, events.RPCBindingCreate, bBinding); err != nil {
		t.Fatalf("create team-b: %v", err)
	}
	l, err := call[[]rpc.Binding](t, nc, events.RPCBindingList, rpc.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].Name != "team-a" || l[1].Name != "team-b" {
		t.Errorf("list = %+v, want team-a and team-b, sorted", l)
	}
	if _, err := call[rpc.Empty](t, nc, events.RPCBindingDelete, rpc.WorkspaceRef{Name: "team-b"}); err != nil {
		t.Fatalf("delete binding: %v", err)
	}
	_, err = call[rpc.Empty](t, nc, events.RPCBindingDelete, rpc.WorkspaceRef{Name: "team-b"})
	wantCode(t, err, rpc.NotFound)

	// Deleting a workspace deletes its binding, which frees its templates.
	if _, err := call[rpc.Empty](t, nc, events.RPCWorkspaceDelete, rpc.WorkspaceRef{Name: "team-a"}); err != nil {
		t.Fatalf("delete workspace: %v", err)
	}
	_, err = call[rpc.Binding](t, nc, events.RPCBindingGet, rpc.WorkspaceRef{Name: "team-a"})
	wantCode(t, err, rpc.NotFound)
	if l, _ := call[[]rpc.Binding](t, nc, events.RPCBindingList, rpc.Empty{}); len(l) != 0 {
		t.Errorf("bindings after the workspace went: %+v", l)
	}
	if _, err := call[rpc.Empty](t, nc, events.RPCTemplateDelete, rpc.WorkspaceRef{Name: "t2"}); err != nil {
		t.Errorf("delete template freed by the workspace's deletion: %v", err)
	}
	// A workspace created again under the name starts without a binding.
	createWorkspace(t, nc, "team-a", "worker-1")
	_, err = call[rpc.Binding](t, nc, events.RPCBindingGet, rpc.WorkspaceRef{Name: "team-a"})
	wantCode(t, err, rpc.NotFound)
}
