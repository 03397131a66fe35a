package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/workspace/service"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// start runs the service until the test ends and checks that it stops with nil.
func start(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Deps{
			Config: service.Config{RPCTimeout: 5 * time.Second},
			NATS:   nc,
			Ready:  func() { close(ready) },
			Now:    func() time.Time { return now },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready after 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// registerClusters plays the provisioner: it declares the cluster registry.
func registerClusters(t *testing.T, js jetstream.JetStream, names ...string) {
	t.Helper()
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketClusters})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, _ := json.Marshal(events.Cluster{Name: n, Simulated: true, At: now})
		if _, err := kv.Put(ctx, n, b); err != nil {
			t.Fatal(err)
		}
	}
}

func call[Resp any](t *testing.T, nc *nats.Conn, subject string, req any) (Resp, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rpc.Call[Resp](ctx, nc, subject, req)
}

func wantCode(t *testing.T, err error, code rpc.Code) {
	t.Helper()
	var e *rpc.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

// streamEvents reads every message in the workspace stream.
func streamEvents(t *testing.T, js jetstream.JetStream) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamWorkspace)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	if n == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(n)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	if len(out) != n {
		t.Fatalf("fetched %d of %d messages", len(out), n)
	}
	return out
}

func TestWorkspaceService(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	registerClusters(t, js, "worker-1", "worker-2")
	start(t, nc)

	create := rpc.CreateWorkspaceRequest{Name: "team-b", Clusters: []string{"worker-1", "worker-2"},
		Namespaces: []string{"ns1", "ns2"}, Username: "u", Email: "e@x"}
	got, err := call[rpc.Workspace](t, nc, events.RPCWorkspaceCreate, create)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	want := rpc.Workspace{Name: "team-b", Clusters: []string{"worker-1", "worker-2"}, Namespaces: []string{"ns1", "ns2"},
		Username: "u", Email: "e@x", CreatedAt: now, Policy: rpc.Policy{AllowedShapes: []string{}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("create reply (-want +got):\n%s", diff)
	}
	if _, err := call[rpc.Workspace](t, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
		Name: "team-a", Clusters: []string{"worker-2"}, Username: "v", Email: "v@x"}); err != nil {
		t.Fatalf("create team-a: %v", err)
	}

	failures := map[string]struct {
		req  rpc.CreateWorkspaceRequest
		code rpc.Code
		msg  string
	}{
		"duplicate name": {req: create, code: rpc.Conflict, msg: "Slice Workspace already exists"},
		"unknown cluster": {req: rpc.CreateWorkspaceRequest{Name: "x", Clusters: []string{"nowhere"}, Username: "u",
			Email: "e@x"}, code: rpc.Invalid, msg: `cluster "nowhere" is not registered`},
		"empty clusters": {req: rpc.CreateWorkspaceRequest{Name: "x", Username: "u", Email: "e@x"}, code: rpc.Invalid,
			msg: "clusters must not be empty"},
		"invalid name": {req: rpc.CreateWorkspaceRequest{Name: "X_1", Clusters: []string{"worker-1"}, Username: "u",
			Email: "e@x"}, code: rpc.Invalid},
	}
	for name, tc := range failures {
		t.Run(name, func(t *testing.T) {
			_, err := call[rpc.Workspace](t, nc, events.RPCWorkspaceCreate, tc.req)
			wantCode(t, err, tc.code)
			if tc.msg != "" && err.(*rpc.Error).Message != tc.msg {
				t.Errorf("message = %q, want %q", err.(*rpc.Error).Message, tc.msg)
			}
		})
	}

	got, err = call[rpc.Workspace](t, nc, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: "team-b"})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("get reply (-want +got):\n%s", diff)
	}
	_, err = call[rpc.Workspace](t, nc, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: "x"})
	wantCode(t, err, rpc.NotFound)

	lists := map[string]struct {
		scope string
		want  []string
	}{
		"all, sorted":   {scope: "", want: []string{"team-a", "team-b"}},
		"scoped":        {scope: "team-b", want: []string{"team-b"}},
		"scoped absent": {scope: "nope", want: []string{}},
	}
	for name, tc := range lists {
		t.Run("list "+name, func(t *testing.T) {
			l, err := call[rpc.WorkspaceList](t, nc, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{Scope: tc.scope})
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, w := range l.Workspaces {
				names = append(names, w.Name)
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	}

	if _, err := call[rpc.Empty](t, nc, events.RPCWorkspaceDelete, rpc.WorkspaceRef{Name: "team-b"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = call[rpc.Empty](t, nc, events.RPCWorkspaceDelete, rpc.WorkspaceRef{Name: "team-b"})
	wantCode(t, err, rpc.NotFound)
	_, err = call[rpc.Workspace](t, nc, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: "team-b"})
	wantCode(t, err, rpc.NotFound)

	// The events: created (team-b), created (team-a), deleted (team-b), in the envelope.
	type seen struct {
		Subject, ID, Type, CEType, MsgID, Source, CESubject, SpecVersion, ContentType string
		Time                                                                          time.Time
		Data                                                                          events.Workspace
	}
	var gotEvents []seen
	for _, m := range streamEvents(t, js) {
		ev, err := bus.ParseEvent(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		var data events.Workspace
		if err := ev.Decode(&data); err != nil {
			t.Fatal(err)
		}
		gotEvents = append(gotEvents, seen{Subject: m.Subject(), ID: ev.ID, Type: ev.Type, CEType: m.Headers().Get(bus.HeaderType),
			MsgID: m.Headers().Get(jetstream.MsgIDHeader), Source: ev.Source, CESubject: ev.Subject,
			SpecVersion: ev.SpecVersion, ContentType: ev.DataContentType, Time: ev.Time, Data: data})
	}
	teamB := events.Workspace{Name: "team-b", Clusters: []string{"worker-1", "worker-2"}, Namespaces: []string{"ns1", "ns2"},
		Username: "u", Email: "e@x", At: now}
	teamA := events.Workspace{Name: "team-a", Clusters: []string{"worker-2"}, Namespaces: []string{"team-a"},
		Username: "v", Email: "v@x", At: now}
	ce := func(subject, typ string, data events.Workspace) seen {
		return seen{Subject: subject, Type: typ, CEType: typ, Source: "egs/workspace", CESubject: data.Name,
			SpecVersion: "1.0", ContentType: "application/json", Time: now, Data: data}
	}
	wantEvents := []seen{
		ce("egs.workspace.v1.team-b.created", "io.egs.workspace.created.v1", teamB),
		ce("egs.workspace.v1.team-a.created", "io.egs.workspace.created.v1", teamA),
		ce("egs.workspace.v1.team-b.deleted", "io.egs.workspace.deleted.v1", teamB),
	}
	if diff := cmp.Diff(wantEvents, gotEvents, cmpopts.IgnoreFields(seen{}, "ID", "MsgID")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	for _, e := range gotEvents {
		if e.ID == "" || e.ID != e.MsgID {
			t.Errorf("event %s: id %q, Nats-Msg-Id %q: want equal and non-empty", e.Subject, e.ID, e.MsgID)
		}
	}
}

func TestUnknownClusterWithoutRegistry(t *testing.T) {
	_, nc, _ := natstest.RunJetStream(t)
	start(t, nc)
	_, err := call[rpc.Workspace](t, nc, events.RPCWorkspaceCreate, rpc.CreateWorkspaceRequest{
		Name: "ws", Clusters: []string{"worker-1"}, Username: "u", Email: "e@x"})
	wantCode(t, err, rpc.Invalid)
	l, err := call[rpc.WorkspaceList](t, nc, events.RPCWorkspaceList, rpc.ListWorkspacesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Workspaces == nil || len(l.Workspaces) != 0 {
		t.Errorf("list = %#v, want an empty, non-nil list", l.Workspaces)
	}
}

// TestRepublishesUnpublished plays a crash between storing a workspace and
// publishing its event: Run publishes it at start-up, once, even when run twice.
func TestRepublishesUnpublished(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces, History: 1,
		Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	rec := `{"name":"lost","clusters":["c1"],"namespaces":["lost"],"username":"u","email":"e@x",` +
		`"createdAt":"2026-11-27T12:00:00Z","published":false}`
	rev, err := kv.Create(ctx, "lost", []byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		t.Run(fmt.Sprintf("run %d", i+1), func(t *testing.T) {
			start(t, nc) // stopped at the end of the subtest
		})
	}
	msgs := streamEvents(t, js)
	if len(msgs) != 1 {
		t.Fatalf("stream has %d events, want 1", len(msgs))
	}
	ev, err := bus.ParseEvent(msgs[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if wantID := fmt.Sprintf("ws.lost.created.%d", rev); ev.ID != wantID || msgs[0].Subject() != "egs.workspace.v1.lost.created" {
		t.Errorf("event %s on %s, want %s on egs.workspace.v1.lost.created", ev.ID, msgs[0].Subject(), wantID)
	}
	e, err := kv.Get(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	var stored struct {
		Published bool `json:"published"`
	}
	if err := json.Unmarshal(e.Value(), &stored); err != nil || !stored.Published {
		t.Errorf("record after recovery = %s (err %v), want published", e.Value(), err)
	}
}
