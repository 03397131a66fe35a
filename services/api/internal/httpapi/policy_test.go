package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

func servePolicy(f *fixture, set *recorder[rpc.SetPolicyRequest]) {
	stored := rpc.Policy{AllowedShapes: []string{"Tesla-T4"}, MaxGPUsPerGPR: 8, MaxMemoryPerGPU: 80, MaxQueuedGPRs: 3,
		MaxExitDuration: 48 * time.Hour, MinPriority: 50, MaxPriority: 200, AutoEviction: ptr(false)}
	f.serve(
		method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
			switch req.Name {
			case "ws":
				return rpc.Workspace{Name: "ws", Policy: stored}, nil
			case "bare":
				return rpc.Workspace{Name: "bare"}, nil
			}
			return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %q not found", req.Name)
		}),
		method(events.RPCWorkspacePolicy, func(_ context.Context, req rpc.SetPolicyRequest) (rpc.Workspace, error) {
			set.set(req)
			if req.Workspace != "ws" {
				return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %q not found", req.Workspace)
			}
			if req.Policy.MinPriority > 300 {
				return rpc.Workspace{}, rpc.Errorf(rpc.Invalid, "minPriority must be between 1 and 300 (0: no limit)")
			}
			return rpc.Workspace{Name: req.Workspace, Policy: req.Policy}, nil
		}),
	)
}

func TestWorkspacePolicy(t *testing.T) {
	f := newFixture(t, "")
	var set recorder[rpc.SetPolicyRequest]
	servePolicy(f, &set)
	owner := f.token("o", "Owner", "", time.Minute)
	viewer := f.token("v", "Viewer", "ws", time.Minute)
	editor := f.token("e", "Editor", "ws", time.Minute)
	const putBody = `{"workspaceName":"ws","policy":{"allowedShapes":["Tesla-T4","n1"],"maxGpusPerGpr":16,"maxMemoryPerGpu":null,` +
		`"maxQueuedGprs":2,"maxExitDuration":"2d","minPriority":10,"maxPriority":300,"autoEviction":null,"requeueOnFailure":true}}`
	tests := map[string]struct {
		method, path, token, body string
		wantStatus                int
		wantBody                  string
	}{
		"get as viewer": {"GET", "/api/v1/workspace-policy?workspaceName=ws", viewer, "", 200,
			`{"statusCode":200,"status":"OK","message":"Success","data":{"workspaceName":"ws","policy":{"allowedShapes":["Tesla-T4"],` +
				`"maxGpusPerGpr":8,"maxMemoryPerGpu":80,"maxQueuedGprs":3,"maxExitDuration":"48h0m0s","minPriority":50,"maxPriority":200,` +
				`"autoEviction":false,"requeueOnFailure":null}}}`},
		"get no policy": {"GET", "/api/v1/workspace-policy?workspaceName=bare", owner, "", 200,
			`{"statusCode":200,"status":"OK","message":"Success","data":{"workspaceName":"bare","policy":{"allowedShapes":[],` +
				`"maxGpusPerGpr":0,"maxMemoryPerGpu":0,"maxQueuedGprs":0,"maxExitDuration":"","minPriority":0,"maxPriority":0,` +
				`"autoEviction":null,"requeueOnFailure":null}}}`},
		"get other workspace": {"GET", "/api/v1/workspace-policy?workspaceName=bare", viewer, "", 403, ""},
		"get unknown":         {"GET", "/api/v1/workspace-policy?workspaceName=nope", owner, "", 404, ""},
		"get no name":         {"GET", "/api/v1/workspace-policy", owner, "", 422, ""},
		"put": {"PUT", "/api/v1/workspace-policy", owner, putBody, 200,
			`{"statusCode":200,"status":"OK","message":"Success","data":{"workspaceName":"ws","policy":{"allowedShapes":["Tesla-T4","n1"],` +
				`"maxGpusPerGpr":16,"maxMemoryPerGpu":0,"maxQueuedGprs":2,"maxExitDuration":"48h0m0s","minPriority":10,"maxPriority":300,` +
				`"autoEviction":null,"requeueOnFailure":true}}}`},
		"put as admin":        {"PUT", "/api/v1/workspace-policy", testAdminToken, putBody, 200, ""},
		"put as editor":       {"PUT", "/api/v1/workspace-policy", editor, putBody, 403, ""},
		"put as viewer":       {"PUT", "/api/v1/workspace-policy", viewer, putBody, 403, ""},
		"put unknown":         {"PUT", "/api/v1/workspace-policy", owner, `{"workspaceName":"nope","policy":{}}`, 404, ""},
		"put no policy":       {"PUT", "/api/v1/workspace-policy", owner, `{"workspaceName":"ws"}`, 422, ""},
		"put bad duration":    {"PUT", "/api/v1/workspace-policy", owner, `{"workspaceName":"ws","policy":{"maxExitDuration":"soon"}}`, 422, ""},
		"put service rejects": {"PUT", "/api/v1/workspace-policy", owner, `{"workspaceName":"ws","policy":{"minPriority":301}}`, 422, ""},
		"put wrong type":      {"PUT", "/api/v1/workspace-policy", owner, `{"workspaceName":"ws","policy":{"maxGpusPerGpr":"8"}}`, 422, ""},
		// D17: the contract's future paths stay unrouted, with or without a token.
		"D17 list":     {"GET", "/api/v1/workspace-policies", owner, "", 404, ""},
		"D17 get":      {"GET", "/api/v1/workspace-policies/ws", owner, "", 404, ""},
		"D17 put":      {"PUT", "/api/v1/workspace-policies/ws", owner, `{}`, 404, ""},
		"D17 no token": {"GET", "/api/v1/workspace-policies", "", "", 404, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.wantBody)
			}
		})
	}

	f.do("PUT", "/api/v1/workspace-policy", owner, putBody)
	want := rpc.SetPolicyRequest{Caller: rpc.Caller{Subject: "o", Role: "Owner"}, Workspace: "ws", Policy: rpc.Policy{
		AllowedShapes: []string{"Tesla-T4", "n1"}, MaxGPUsPerGPR: 16, MaxQueuedGPRs: 2, MaxExitDuration: 48 * time.Hour,
		MinPriority: 10, MaxPriority: 300, RequeueOnFailure: ptr(true)}}
	if diff := cmp.Diff(want, set.get()); diff != "" {
		t.Errorf("set-policy request (-want +got):\n%s", diff)
	}
	f.do("PUT", "/api/v1/workspace-policy", owner, `{"workspaceName":"ws","policy":{"maxExitDuration":"1h30m"}}`)
	if got := set.get().Policy; got.MaxExitDuration != 90*time.Minute || got.AllowedShapes == nil {
		t.Errorf("Go-syntax duration: %+v", got)
	}
}

func TestApproveAndReject(t *testing.T) {
	f := newFixture(t, "")
	owner := f.token("o", "Owner", "", time.Minute)
	// No gpr-scheduler answering: the edge's usual 503.
	if r := f.do("POST", "/api/v1/gpr/approve", owner, `{"gprId":"gpr-1"}`); r.status != http.StatusServiceUnavailable {
		t.Errorf("approve without a scheduler = %d %s, want 503", r.status, r.body)
	}
	var approved, rejected recorder[rpc.DecideRequest]
	f.serve(
		method(events.RPCGPRApprove, func(_ context.Context, req rpc.DecideRequest) (rpc.Empty, error) {
			approved.set(req)
			if req.GPRID == "gpr-queued" {
				return rpc.Empty{}, rpc.Errorf(rpc.Conflict, "GPR gpr-queued is not awaiting approval")
			}
			return rpc.Empty{}, nil
		}),
		method(events.RPCGPRReject, func(_ context.Context, req rpc.DecideRequest) (rpc.Empty, error) {
			rejected.set(req)
			return rpc.Empty{}, nil
		}),
	)
	tests := map[string]struct {
		path, token, body string
		wantStatus        int
		wantBody          string
	}{
		"approve":             {"/api/v1/gpr/approve", owner, `{"gprId":"gpr-1"}`, 200, okEmpty},
		"approve as admin":    {"/api/v1/gpr/approve", testAdminToken, `{"gprId":"gpr-1"}`, 200, okEmpty},
		"approve not pending": {"/api/v1/gpr/approve", owner, `{"gprId":"gpr-queued"}`, 409, ""},
		"approve no id":       {"/api/v1/gpr/approve", owner, `{}`, 422, ""},
		"approve as editor":   {"/api/v1/gpr/approve", f.token("e", "Editor", "ws", time.Minute), `{"gprId":"gpr-1"}`, 403, ""},
		"reject":              {"/api/v1/gpr/reject", owner, `{"gprId":"gpr-2","reason":"too big"}`, 200, okEmpty},
		"reject no reason":    {"/api/v1/gpr/reject", owner, `{"gprId":"gpr-2","reason":null}`, 200, okEmpty},
		"reject as viewer":    {"/api/v1/gpr/reject", f.token("v", "Viewer", "ws", time.Minute), `{"gprId":"gpr-2"}`, 403, ""},
		"reject bad reason":   {"/api/v1/gpr/reject", owner, `{"gprId":"gpr-2","reason":"a\u0000b"}`, 422, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do("POST", tc.path, tc.token, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.wantBody)
			}
		})
	}
	f.do("POST", "/api/v1/gpr/approve", owner, `{"gprId":"gpr-7","reason":"ignored"}`)
	if diff := cmp.Diff(rpc.DecideRequest{Caller: rpc.Caller{Subject: "o", Role: "Owner"}, GPRID: "gpr-7"}, approved.get()); diff != "" {
		t.Errorf("approve request (-want +got):\n%s", diff)
	}
	f.do("POST", "/api/v1/gpr/reject", owner, `{"gprId":"gpr-8","reason":"over budget"}`)
	want := rpc.DecideRequest{Caller: rpc.Caller{Subject: "o", Role: "Owner"}, GPRID: "gpr-8", Reason: "over budget"}
	if diff := cmp.Diff(want, rejected.get()); diff != "" {
		t.Errorf("reject request (-want +got):\n%s", diff)
	}
}

func TestMoveGPR(t *testing.T) {
	f := newFixture(t, "")
	owner := f.token("o", "Owner", "", time.Minute)
	var moved recorder[rpc.MoveGPRRequest]
	f.serve(method(events.RPCGPRMove, func(_ context.Context, req rpc.MoveGPRRequest) (rpc.Empty, error) {
		moved.set(req)
		if req.GPRID == "gpr-first" {
			return rpc.Empty{}, rpc.Errorf(rpc.Conflict, "GPR gpr-first is already first in the queue")
		}
		return rpc.Empty{}, nil
	}))
	tests := map[string]struct {
		token, body string
		wantStatus  int
	}{
		"up":              {owner, `{"gprId":"gpr-1","direction":"up"}`, 200},
		"down as admin":   {testAdminToken, `{"gprId":"gpr-1","direction":"down"}`, 200},
		"already first":   {owner, `{"gprId":"gpr-first","direction":"up"}`, 409},
		"no direction":    {owner, `{"gprId":"gpr-1"}`, 422},
		"bad direction":   {owner, `{"gprId":"gpr-1","direction":"sideways"}`, 422},
		"no id":           {owner, `{"direction":"up"}`, 422},
		"malformed":       {owner, `{"gprId":`, 400},
		"editor may not":  {f.token("e", "Editor", "ws", time.Minute), `{"gprId":"gpr-1","direction":"up"}`, 403},
		"viewer may not":  {f.token("v", "Viewer", "ws", time.Minute), `{"gprId":"gpr-1","direction":"up"}`, 403},
		"unauthenticated": {"", `{"gprId":"gpr-1","direction":"up"}`, 401},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if r := f.do("POST", "/api/v1/gpr/move", tc.token, tc.body); r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
		})
	}
	f.do("POST", "/api/v1/gpr/move", owner, `{"gprId":"gpr-9","direction":"down"}`)
	if got := moved.get(); got.GPRID != "gpr-9" || got.Direction != rpc.MoveDown || got.Caller.Role != "Owner" {
		t.Errorf("move request %+v", got)
	}
}

func TestAdminClusters(t *testing.T) {
	f := newFixture(t, "")
	owner := f.token("o", "Owner", "", time.Minute)
	var reg recorder[rpc.ClusterRegisterRequest]
	f.serve(
		method(events.RPCClusterRegister, func(_ context.Context, req rpc.ClusterRegisterRequest) (events.Cluster, error) {
			reg.set(req)
			return events.Cluster{Name: req.Name}, nil
		}),
		method(events.RPCClusterList, func(_ context.Context, _ rpc.ClusterListRequest) (rpc.ClusterList, error) {
			return rpc.ClusterList{Clusters: []events.Cluster{{Name: "kube-a"}}}, nil
		}),
		method(events.RPCClusterUnregister, func(_ context.Context, req rpc.ClusterRef) (events.Cluster, error) {
			if req.Name == "nope" {
				return events.Cluster{}, rpc.Errorf(rpc.NotFound, "cluster nope is not registered")
			}
			return events.Cluster{Name: req.Name}, nil
		}),
	)
	kc := `{"name":"kube-b","kubeConfig":"apiVersion: v1\nkind: Config\n"}`
	tests := map[string]struct {
		method, path, token, body string
		wantStatus                int
	}{
		"register":             {"POST", "/api/v1/admin/clusters", owner, kc, 201},
		"register as admin":    {"POST", "/api/v1/admin/clusters", testAdminToken, kc, 201},
		"register no config":   {"POST", "/api/v1/admin/clusters", owner, `{"name":"kube-b"}`, 422},
		"register bad name":    {"POST", "/api/v1/admin/clusters", owner, `{"name":"a.b","kubeConfig":"x"}`, 422},
		"register upper case":  {"POST", "/api/v1/admin/clusters", owner, `{"name":"Lab_1","kubeConfig":"x"}`, 422},
		"register malformed":   {"POST", "/api/v1/admin/clusters", owner, `{"name":`, 400},
		"register as editor":   {"POST", "/api/v1/admin/clusters", f.token("e", "Editor", "ws", time.Minute), kc, 403},
		"list":                 {"GET", "/api/v1/admin/clusters", owner, "", 200},
		"list as viewer":       {"GET", "/api/v1/admin/clusters", f.token("v", "Viewer", "ws", time.Minute), "", 403},
		"unregister":           {"DELETE", "/api/v1/admin/clusters/kube-b", owner, "", 200},
		"unregister unknown":   {"DELETE", "/api/v1/admin/clusters/nope", owner, "", 404},
		"unregister anonymous": {"DELETE", "/api/v1/admin/clusters/kube-b", "", "", 401},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if r := f.do(tc.method, tc.path, tc.token, tc.body); r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
		})
	}
	f.do("POST", "/api/v1/admin/clusters", owner, `{"name":"kube-c","kubeConfig":"k","server":"https://kube-c:6443"}`)
	if got := reg.get(); got.Name != "kube-c" || got.KubeConfig != "k" || got.Server != "https://kube-c:6443" || got.Caller.Role != "Owner" {
		t.Errorf("register request %+v", got)
	}
}
