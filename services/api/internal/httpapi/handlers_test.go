package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

const fullGPR = `{"clusterName": "c1", "enableAutoClusterSelection": false, "enableAutoGpuSelection": false, "enableEviction": true,
 "enforceIdleTimeOut": false, "exitDuration": "0d0h5m", "gprName": "g", "gpuShape": "T4", "idleTimeOutDuration": "0d0h1m",
 "instanceType": "n1", "memoryPerGpu": 15, "numberOfGPUNodes": 1, "numberOfGPUs": 2, "preferredClusters": ["c1"],
 "priority": 201, "requeueOnFailure": false, "sliceName": "ws"}`

// recorder keeps the last request a test responder saw.
type recorder[T any] struct {
	mu   sync.Mutex
	last T
}

func (r *recorder[T]) set(v T) { r.mu.Lock(); r.last = v; r.mu.Unlock() }
func (r *recorder[T]) get() T  { r.mu.Lock(); defer r.mu.Unlock(); return r.last }

func TestCreateGPR(t *testing.T) {
	f := newFixture(t, "")
	var seen recorder[rpc.CreateGPRRequest]
	f.serve(method(events.RPCGPRCreate, func(_ context.Context, req rpc.CreateGPRRequest) (rpc.CreateGPRReply, error) {
		seen.set(req)
		if req.Spec.Name == "dup" {
			return rpc.CreateGPRReply{}, rpc.Errorf(rpc.Invalid, "exitDuration: bad duration")
		}
		return rpc.CreateGPRReply{GPRID: "gpr-7c29e338-ebda"}, nil
	}))
	editor := f.token("k1", "Editor", "ws", time.Minute)
	edit := func(from, to string) string { return strings.Replace(fullGPR, from, to, 1) }
	tests := map[string]struct {
		body       string
		wantStatus int
		wantMsg    string // substring of message on failure
	}{
		"full":                  {fullGPR, 200, ""},
		"memoryPerGPU spelling": {edit(`"memoryPerGpu": 15`, `"memoryPerGPU": 15`), 200, ""},
		"unknown keys":          {edit(`"gprName": "g"`, `"gprName": "g", "futureKey": {"a": [1]}`), 200, ""},
		"malformed":             {edit(`"priority": 201,`, `"priority": 201`), 400, ""},
		"priority 0":            {edit(`"priority": 201`, `"priority": 0`), 422, `"priority"`},
		"priority 301":          {edit(`"priority": 201`, `"priority": 301`), 422, `"priority"`},
		"priority string":       {edit(`"priority": 201`, `"priority": "201"`), 422, `"priority"`},
		"gpus as string":        {edit(`"numberOfGPUs": 2`, `"numberOfGPUs": "2"`), 422, `"numberOfGPUs"`},
		"bool as string":        {edit(`"enableEviction": true`, `"enableEviction": "true"`), 422, `"enableEviction"`},
		"mixed clusters":        {edit(`"preferredClusters": ["c1"]`, `"preferredClusters":["c1",["a","b"]]`), 422, `"preferredClusters"`},
		"empty exitDuration":    {edit(`"exitDuration": "0d0h5m"`, `"exitDuration": ""`), 422, `"exitDuration" is not allowed to be empty`},
		"bad slice name":        {edit(`"sliceName": "ws"`, `"sliceName": "my ws"`), 422, `"sliceName"`},
		"service rejects":       {edit(`"gprName": "g"`, `"gprName": "dup"`), 422, "exitDuration: bad duration"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(http.MethodPost, "/api/v1/gpr", editor, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantStatus == 200 {
				if diff := cmp.Diff(map[string]any{"gprId": "gpr-7c29e338-ebda"}, r.data()); diff != "" {
					t.Errorf("data (-want +got):\n%s", diff)
				}
				return
			}
			if msg, _ := r.env["message"].(string); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
			}
		})
	}
	// The exact message of §6.1 for an empty exitDuration.
	r := f.do(http.MethodPost, "/api/v1/gpr", editor, edit(`"exitDuration": "0d0h5m"`, `"exitDuration": ""`))
	if r.env["message"] != `"exitDuration" is not allowed to be empty` {
		t.Errorf("message = %v", r.env["message"])
	}

	f.do(http.MethodPost, "/api/v1/gpr", editor, edit(`"memoryPerGpu": 15`, `"memoryPerGPU": 16`))
	got := seen.get()
	want := rpc.CreateGPRRequest{
		Caller: rpc.Caller{Subject: "k1", Role: "Editor", Workspace: "ws"},
		Spec: rpc.GPRSpec{Name: "g", Workspace: "ws", Cluster: "c1", PreferredClusters: []string{"c1"}, GPUsPerNode: 2, Nodes: 1,
			InstanceType: "n1", GPUShape: "T4", MemoryPerGPU: 16, ExitDuration: "0d0h5m", Priority: 201,
			IdleTimeout: ptr("0d0h1m"), EnableEviction: ptr(true), RequeueOnFailure: ptr(false)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request to the scheduler (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }

func TestGetGPRObject(t *testing.T) {
	f := newFixture(t, "")
	f.serve(method(events.RPCGPRGet, func(_ context.Context, req rpc.GPRRef) (rpc.GPR, error) {
		if req.GPRID != "gpr-b900c98b-27a6" {
			return rpc.GPR{}, rpc.Errorf(rpc.NotFound, "GPR %s not found", req.GPRID)
		}
		return rpc.GPR{GPRID: req.GPRID, Name: "created-by-coreapi", Workspace: "pink", Cluster: "worker-1", GPUsPerNode: 1,
			Nodes: 1, InstanceType: "n1-highcpu-2", GPUShape: "Tesla-T4", MemoryPerGPU: 15, Priority: 201,
			ExitDuration: time.Minute, IdleTimeout: time.Minute, EnforceIdleTimeout: true, ProvisioningStatus: "Queued",
			EstimatedStart: time.Date(2024, 12, 24, 8, 13, 8, 0, time.UTC)}, nil
	}))
	viewer := f.token("v", "Viewer", "pink", time.Minute)
	r := f.do(http.MethodGet, "/api/v1/gpr?gprId=gpr-b900c98b-27a6", viewer, "")
	const want = `{"statusCode":200,"status":"OK","message":"Success","data":{"gprId":"gpr-b900c98b-27a6","gprName":"created-by-coreapi",` +
		`"sliceName":"pink","clusterName":"worker-1","numberOfGPUs":1,"numberOfGPUNodes":1,"instanceType":"n1-highcpu-2",` +
		`"gpuShape":"Tesla-T4","memoryPerGPU":15,"priority":201,"gpuSharingMode":"Virtual Machine",` +
		`"estimatedStartTime":"2024-12-24T08:13:08Z","estimatedWaitTime":"0h0m0s","exitDuration":"0h1m0s","earlyRelease":false,` +
		`"multiNode":false,"dedicatedNodes":false,"enableRDMA":false,"enableSecondaryNetwork":false,"enforceIdleTimeOut":true,` +
		`"idleTimeOutDuration":"0h1m0s","status":{"provisioningStatus":"Queued","failureReason":"","numGpusAllocated":0,` +
		`"startTimestamp":"","completionTimestamp":"","cost":"","nodes":[],"internalState":"","retryCount":0,"delayedCount":0},` +
		`"queuePosition":0,"pendingReasons":[],"evictedBy":""}}`
	if r.body != want {
		t.Errorf("GET gpr\n got %s\nwant %s", r.body, want)
	}
	keys := make([]string, 0, len(r.data()))
	for k := range r.data() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 25 {
		t.Errorf("GPR has %d keys, want 20 + 2 + 3 of ours: %v", len(keys), keys)
	}

	if r := f.do(http.MethodGet, "/api/v1/gpr?gprId=gpr-00000000-0000", viewer, ""); r.status != 404 || r.env["message"] != "GPR gpr-00000000-0000 not found" {
		t.Errorf("unknown id: %d %s", r.status, r.body)
	}
	if r := f.do(http.MethodGet, "/api/v1/gpr", viewer, ""); r.status != 422 {
		t.Errorf("no id: %d %s", r.status, r.body)
	}
}

func TestUpdateAndDeleteGPR(t *testing.T) {
	f := newFixture(t, "")
	var upd recorder[rpc.UpdateGPRRequest]
	f.serve(
		method(events.RPCGPRUpdate, func(_ context.Context, req rpc.UpdateGPRRequest) (rpc.Empty, error) {
			upd.set(req)
			if req.EarlyRelease != nil && *req.EarlyRelease {
				return rpc.Empty{}, rpc.Errorf(rpc.Conflict, "Cannot update early release of GPR in Queued state")
			}
			return rpc.Empty{}, nil
		}),
		method(events.RPCGPRDelete, func(_ context.Context, req rpc.GPRRef) (rpc.Empty, error) {
			if req.GPRID == "gpr-prov" {
				return rpc.Empty{}, rpc.Errorf(rpc.Conflict, "Cannot delete GPR in Successful state")
			}
			return rpc.Empty{}, nil
		}),
	)
	owner := f.token("o", "Owner", "", time.Minute)
	tests := map[string]struct {
		method, body string
		wantStatus   int
		wantBody     string
	}{
		"priority":         {"PUT", `{"gprId":"gpr-1","priority":150}`, 200, `{"statusCode":200,"status":"OK","message":"Success","data":{}}`},
		"rename":           {"PUT", `{"gprId":"gpr-1","gprName":"new-name"}`, 200, ""},
		"priority 301":     {"PUT", `{"gprId":"gpr-1","priority":301}`, 422, ""},
		"no operation":     {"PUT", `{"gprId":"gpr-1"}`, 422, ""},
		"early release":    {"PUT", `{"earlyRelease":true,"gprId":"gpr-1"}`, 409, `{"statusCode":409,"status":"CONFLICT","message":"Cannot update early release of GPR in Queued state","data":null,"error":{"errorKey":"CONFLICT","message":"Cannot update early release of GPR in Queued state","data":null}}`},
		"malformed":        {"PUT", `{"gprId":`, 400, ""},
		"delete":           {"DELETE", `{"gprId":"gpr-1"}`, 200, `{"statusCode":200,"status":"OK","message":"Success","data":{}}`},
		"delete provision": {"DELETE", `{"gprId":"gpr-prov"}`, 409, ""},
		"delete no id":     {"DELETE", `{}`, 422, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, "/api/v1/gpr", owner, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("%s = %d %s, want %d", tc.body, r.status, r.body, tc.wantStatus)
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.wantBody)
			}
		})
	}
	f.do("PUT", "/api/v1/gpr", owner, `{"gprId":"gpr-9","priority":3,"gprName":"n2"}`)
	want := rpc.UpdateGPRRequest{Caller: rpc.Caller{Subject: "o", Role: "Owner"}, GPRID: "gpr-9", Priority: ptr(3), Name: ptr("n2")}
	if diff := cmp.Diff(want, upd.get()); diff != "" {
		t.Errorf("update request (-want +got):\n%s", diff)
	}
}

// TestArraysNeverNull: services answering empty or nil lists still give [].
func TestArraysNeverNull(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f)
	f.serve(
		method(events.RPCGPRList, func(context.Context, rpc.ListGPRsRequest) (rpc.GPRList, error) { return rpc.GPRList{}, nil }),
		method(events.RPCInventoryList, func(context.Context, rpc.InventoryRequest) (rpc.Inventory, error) { return rpc.Inventory{}, nil }),
		method(events.RPCGPRAllocations, func(context.Context, rpc.Empty) (rpc.AllocationList, error) { return rpc.AllocationList{}, nil }),
		method(events.RPCAuthKeyList, func(context.Context, rpc.ListKeysRequest) (rpc.KeyList, error) { return rpc.KeyList{}, nil }),
		method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
			return rpc.Workspace{Name: req.Name, Clusters: []string{"c1"}}, nil
		}),
	)
	owner := f.token("o", "Owner", "", time.Minute)
	tests := map[string]struct{ path, wantData string }{
		"workspaces":          {"/api/v1/slice-workspace/list", `{"workspaces":[]}`},
		"gprs":                {"/api/v1/gpr/list?sliceName=ws", `{"items":[]}`},
		"inventory":           {"/api/v1/inventory/list", `{"managedNodes":[],"unmanagedNodes":[]}`},
		"workspace inventory": {"/api/v1/inventory?sliceName=ws", `{"items":[]}`},
		"keys":                {"/api/v1/api-key/list?workspaceName=ws", `{"data":[]}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(http.MethodGet, tc.path, owner, "")
			want := `{"statusCode":200,"status":"OK","message":"Success","data":` + tc.wantData + `}`
			if r.body != want {
				t.Errorf("GET %s\n got %d %s\nwant %s", tc.path, r.status, r.body, want)
			}
		})
	}
}

func TestInventoryJoinsNodesAndAllocations(t *testing.T) {
	f := newFixture(t, "")
	at := time.Unix(1735025703, 0)
	f.serve(
		method(events.RPCInventoryList, func(context.Context, rpc.InventoryRequest) (rpc.Inventory, error) {
			return rpc.Inventory{Nodes: []events.Node{
				{Cluster: "worker-1", Name: "gke-w1-gpu-klfn", InstanceType: "n1-highcpu-2", GPUProduct: "Tesla-T4",
					GPUMemoryGB: 15, GPUCount: 1, Managed: true, Ready: true, CloudProvider: "gcp"},
			}}, nil
		}),
		method(events.RPCGPRAllocations, func(context.Context, rpc.Empty) (rpc.AllocationList, error) {
			return rpc.AllocationList{Allocations: []rpc.Allocation{
				{Cluster: "worker-1", Node: "gke-w1-gpu-klfn", GPRID: "gpr-b45a1d34-bf9c", GPRName: "gpr-b45a1d34-bf9c", Workspace: "ws", GPUs: 1, At: at},
			}}, nil
		}),
	)
	r := f.do(http.MethodGet, "/api/v1/inventory/list", f.token("v", "Viewer", "ws", time.Minute), "")
	const want = `{"statusCode":200,"status":"OK","message":"Success","data":{"managedNodes":[{"gpuNodeName":"gke-w1-gpu-klfn",` +
		`"clusterName":"worker-1","instanceType":"n1-highcpu-2","gpuShape":"n1-highcpu-2","gpuModelName":"Tesla-T4","memory":15,` +
		`"gpuCount":1,"availableGPUs":0,"gpuTempThreshold":"","gpuPowerThreshold":"","cloudProvider":"gcp","cloud":"gcp","region":"",` +
		`"nodeHealth":"Healthy","gpuNodeStatus":"NODE_RESERVED","gpuNodeState":"NODE_RESERVED","allocation":[{"gprName":"gpr-b45a1d34-bf9c",` +
		`"sliceName":"ws","totalGPUsAllocated":1,"allocationTimeStamp":{"seconds":"1735025703","nanos":0}}],"gpuSlicingProfile":[]}],` +
		`"unmanagedNodes":[]}}`
	if r.body != want {
		t.Errorf("inventory\n got %s\nwant %s", r.body, want)
	}
}

// TestInventoryScopedForEditorAndViewer: every role reads the whole
// inventory (D15), but a caller bound to a workspace sees only its own
// workspace's allocations; counts and node states stay those of all.
func TestInventoryScopedForEditorAndViewer(t *testing.T) {
	f := newFixture(t, "")
	at := time.Unix(1735025703, 0)
	f.serve(
		method(events.RPCInventoryList, func(context.Context, rpc.InventoryRequest) (rpc.Inventory, error) {
			return rpc.Inventory{Nodes: []events.Node{
				{Cluster: "worker-1", Name: "shared", GPUCount: 4, Managed: true, Ready: true},
				{Cluster: "worker-1", Name: "theirs", GPUCount: 2, Managed: true, Ready: true},
				{Cluster: "worker-1", Name: "free", GPUCount: 2, Managed: true, Ready: true},
			}}, nil
		}),
		method(events.RPCGPRAllocations, func(context.Context, rpc.Empty) (rpc.AllocationList, error) {
			return rpc.AllocationList{Allocations: []rpc.Allocation{
				{Cluster: "worker-1", Node: "shared", GPRID: "gpr-1", GPRName: "mine", Workspace: "ws", GPUs: 1, At: at},
				{Cluster: "worker-1", Node: "shared", GPRID: "gpr-2", GPRName: "their-gpr", Workspace: "other", GPUs: 2, At: at},
				{Cluster: "worker-1", Node: "theirs", GPRID: "gpr-3", GPRName: "their-other-gpr", Workspace: "other", GPUs: 2, At: at},
			}}, nil
		}),
	)
	type node struct {
		available   int
		status      string
		allocations []string // gprName/sliceName
	}
	everything := map[string]node{
		"shared": {1, "NODE_RESERVED", []string{"mine/ws", "their-gpr/other"}},
		"theirs": {0, "NODE_RESERVED", []string{"their-other-gpr/other"}},
		"free":   {2, "NODE_AVAILABLE", nil},
	}
	scoped := map[string]node{
		"shared": {1, "NODE_RESERVED", []string{"mine/ws"}},
		"theirs": {0, "NODE_RESERVED", nil},
		"free":   {2, "NODE_AVAILABLE", nil},
	}
	tests := map[string]struct {
		token string
		want  map[string]node
	}{
		"owner":  {f.token("o", "Owner", "", time.Minute), everything},
		"admin":  {testAdminToken, everything},
		"editor": {f.token("e", "Editor", "ws", time.Minute), scoped},
		"viewer": {f.token("v", "Viewer", "ws", time.Minute), scoped},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(http.MethodGet, "/api/v1/inventory/list", tc.token, "")
			if r.status != 200 {
				t.Fatalf("status = %d %s", r.status, r.body)
			}
			got := map[string]node{}
			for _, n := range r.data()["managedNodes"].([]any) {
				m := n.(map[string]any)
				avail, _ := m["availableGPUs"].(json.Number).Int64()
				g := node{available: int(avail), status: m["gpuNodeStatus"].(string)}
				allocs, ok := m["allocation"].([]any)
				if !ok {
					t.Errorf("node %v: allocation is not an array: %s", m["gpuNodeName"], r.body)
				}
				for _, a := range allocs {
					a := a.(map[string]any)
					g.allocations = append(g.allocations, a["gprName"].(string)+"/"+a["sliceName"].(string))
				}
				got[m["gpuNodeName"].(string)] = g
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(node{})); diff != "" {
				t.Errorf("inventory (-want +got):\n%s", diff)
			}
			if tc.want["theirs"].allocations == nil && strings.Contains(r.body, "other") {
				t.Errorf("another workspace shows through: %s", r.body)
			}
		})
	}
}

func TestWorkspaceInventory(t *testing.T) {
	f := newFixture(t, "")
	var asked recorder[rpc.InventoryRequest]
	f.serve(
		method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
			if req.Name != "ws" {
				return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %s not found", req.Name)
			}
			return rpc.Workspace{Name: "ws", Clusters: []string{"worker-1"}}, nil
		}),
		method(events.RPCInventoryList, func(_ context.Context, req rpc.InventoryRequest) (rpc.Inventory, error) {
			asked.set(req)
			n := events.Node{Cluster: "worker-1", InstanceType: "n1-highcpu-2", GPUProduct: "Tesla-T4", GPUMemoryGB: 15, GPUCount: 1, Managed: true}
			a, b := n, n
			a.Name, b.Name = "a", "b"
			return rpc.Inventory{Nodes: []events.Node{a, b}}, nil
		}),
	)
	owner := f.token("o", "Owner", "", time.Minute)
	r := f.do(http.MethodGet, "/api/v1/inventory?sliceName=ws", owner, "")
	const want = `{"statusCode":200,"status":"OK","message":"Success","data":{"items":[{"instanceType":"n1-highcpu-2","gpuShape":"Tesla-T4",` +
		`"memoryPerGpu":15,"gpuPerNode":1,"totalGpuNodes":2,"clusterName":"worker-1","gpuSlicingProfile":[]}]}}`
	if r.body != want {
		t.Errorf("workspace inventory\n got %s\nwant %s", r.body, want)
	}
	if diff := cmp.Diff(rpc.InventoryRequest{Clusters: []string{"worker-1"}}, asked.get()); diff != "" {
		t.Errorf("inventory request (-want +got):\n%s", diff)
	}
	if r := f.do(http.MethodGet, "/api/v1/inventory?sliceName=nope", owner, ""); r.status != 404 {
		t.Errorf("unknown workspace: %d %s", r.status, r.body)
	}
	if r := f.do(http.MethodGet, "/api/v1/inventory", owner, ""); r.status != 422 {
		t.Errorf("no sliceName: %d %s", r.status, r.body)
	}
}

func TestWorkspaceAndKubeConfig(t *testing.T) {
	f := newFixture(t, "")
	var (
		kc      recorder[rpc.KubeConfigRequest]
		kcCalls atomic.Int32
	)
	f.serve(
		method(events.RPCWorkspaceCreate, func(_ context.Context, req rpc.CreateWorkspaceRequest) (rpc.Workspace, error) {
			if req.Name == "taken" {
				return rpc.Workspace{}, rpc.Errorf(rpc.Conflict, "Slice Workspace already exists")
			}
			return rpc.Workspace{Name: req.Name, Clusters: req.Clusters}, nil
		}),
		method(events.RPCWorkspaceDelete, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Empty, error) {
			if req.Name != "ws" {
				return rpc.Empty{}, rpc.Errorf(rpc.NotFound, "workspace %s not found", req.Name)
			}
			return rpc.Empty{}, nil
		}),
		method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
			switch req.Name {
			case "ws":
				return rpc.Workspace{Name: req.Name, Clusters: []string{"worker-1", "worker-2"}}, nil
			case "empty":
				return rpc.Workspace{Name: req.Name}, nil
			}
			return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %s not found", req.Name)
		}),
		method(events.RPCKubeConfig, func(_ context.Context, req rpc.KubeConfigRequest) (rpc.KubeConfig, error) {
			kc.set(req)
			kcCalls.Add(1)
			if req.Cluster == "worker-2" {
				return rpc.KubeConfig{KubeConfig: "apiVersion: v1\nkind: Config\n"}, nil
			}
			return rpc.KubeConfig{}, rpc.Errorf(rpc.NotImplemented, "kubeconfig issuance not yet available")
		}),
	)
	owner := f.token("o", "Owner", "", time.Minute)
	editor := f.token("e", "Editor", "ws", time.Minute)
	tests := map[string]struct {
		method, path, token, body string
		wantStatus                int
		wantBody                  string
	}{
		"create": {"POST", "/api/v1/slice-workspace", owner,
			`{"clusters": ["c1"], "email": "e@x", "namespaces": ["ns1"], "username": "u", "workspaceName": "ws", "sliceSubnet": "10.1.0.0/16"}`,
			200, `{"statusCode":200,"status":"OK","message":"Success","data":{"workspaceName":"ws"}}`},
		"create duplicate": {"POST", "/api/v1/slice-workspace", owner, `{"clusters":["c1"],"namespaces":[],"workspaceName":"taken"}`,
			409, `{"statusCode":409,"status":"CONFLICT","message":"Slice Workspace already exists","data":null,"error":{"errorKey":"CONFLICT","message":"Slice Workspace already exists","data":null}}`},
		"create empty clusters": {"POST", "/api/v1/slice-workspace", owner, `{"clusters":[],"workspaceName":"ws"}`, 422, ""},
		"create clusters wrong": {"POST", "/api/v1/slice-workspace", owner, `{"clusters":"c1","workspaceName":"ws"}`, 422, ""},
		"delete": {"DELETE", "/api/v1/slice-workspace", owner, `{"workspaceName":"ws"}`,
			200, `{"statusCode":200,"status":"OK","message":"Success","data":{}}`},
		"delete unknown": {"DELETE", "/api/v1/slice-workspace", owner, `{"workspaceName":"nope"}`, 404, ""},
		"kube-config": {"POST", "/api/v1/slice-workspace/kube-config", editor, `{"clusterName":"worker-2","workspaceName":"ws"}`,
			200, `{"statusCode":200,"status":"OK","message":"Success","data":{"kubeConfig":"apiVersion: v1\nkind: Config\n"}}`},
		"kube-config other ws": {"POST", "/api/v1/slice-workspace/kube-config", editor, `{"clusterName":"worker-2","workspaceName":"x"}`, 403, ""},
		// §4.4: 404 for an unknown workspace or a cluster outside it, never the provisioner's 501.
		"kube-config unknown ws": {"POST", "/api/v1/slice-workspace/kube-config", owner, `{"clusterName":"worker-2","workspaceName":"nope"}`,
			404, `{"statusCode":404,"status":"NOT_FOUND","message":"workspace nope not found","data":null,"error":{"errorKey":"NOT_FOUND","message":"workspace nope not found","data":null}}`},
		"kube-config unknown ws no cluster": {"POST", "/api/v1/slice-workspace/kube-config", owner, `{"workspaceName":"nope"}`, 404, ""},
		"kube-config cluster outside ws": {"POST", "/api/v1/slice-workspace/kube-config", editor, `{"clusterName":"worker-9","workspaceName":"ws"}`,
			404, `{"statusCode":404,"status":"NOT_FOUND","message":"cluster worker-9 is not in workspace ws","data":null,"error":{"errorKey":"NOT_FOUND","message":"cluster worker-9 is not in workspace ws","data":null}}`},
		"kube-config ws without cluster": {"POST", "/api/v1/slice-workspace/kube-config", owner, `{"workspaceName":"empty"}`, 404, ""},
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
	if n := kcCalls.Load(); n != 1 {
		t.Errorf("provisioner saw %d kube-config requests, want 1 (only the valid one)", n)
	}
	// A valid pair goes to the provisioner, whose 501 the caller gets.
	if r := f.do("POST", "/api/v1/slice-workspace/kube-config", editor, `{"clusterName":"worker-1","workspaceName":"ws"}`); r.status != 501 {
		t.Errorf("kube-config of a valid pair: %d %s, want the provisioner's 501", r.status, r.body)
	}
	// An older caller without clusterName gets the first cluster (D6).
	f.do("POST", "/api/v1/slice-workspace/kube-config", editor, `{"workspaceName":"ws"}`)
	want := rpc.KubeConfigRequest{Caller: rpc.Caller{Subject: "e", Role: "Editor", Workspace: "ws"}, Workspace: "ws", Cluster: "worker-1"}
	if diff := cmp.Diff(want, kc.get()); diff != "" {
		t.Errorf("kube-config request (-want +got):\n%s", diff)
	}
}

func TestAPIKeys(t *testing.T) {
	f := newFixture(t, "")
	var created recorder[rpc.CreateKeyRequest]
	f.serve(
		method(events.RPCAuthKeyCreate, func(_ context.Context, req rpc.CreateKeyRequest) (rpc.CreateKeyReply, error) {
			created.set(req)
			if req.Name == "dup" {
				return rpc.CreateKeyReply{}, rpc.Errorf(rpc.Conflict, "api key %s exists", req.Name)
			}
			return rpc.CreateKeyReply{APIKey: "5067bd55-1aef-4c84-8987-3e966e917f07", KeyID: "kid1"}, nil
		}),
		method(events.RPCAuthKeyDelete, func(_ context.Context, req rpc.DeleteKeyRequest) (rpc.Empty, error) {
			if req.APIKey != "kid1" {
				return rpc.Empty{}, rpc.Errorf(rpc.NotFound, "api key not found")
			}
			return rpc.Empty{}, nil
		}),
		method(events.RPCAuthKeyList, func(_ context.Context, req rpc.ListKeysRequest) (rpc.KeyList, error) {
			return rpc.KeyList{Keys: []rpc.KeyInfo{{KeyID: "kid1", Name: "ws-key", Role: "Editor", UserName: "u",
				Workspace: req.Workspace, Validity: "2025-12-31", Description: "d"}}}, nil
		}),
		method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
			if req.Name != "ws" {
				return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %s not found", req.Name)
			}
			return rpc.Workspace{Name: "ws"}, nil
		}),
	)
	admin := testAdminToken
	tests := map[string]struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		"create": {"POST", "/api/v1/api-key", `{"description": "d", "name": "n", "role": "Editor", "userName": "u", "validity": "2025-12-31", "workspaceName": "ws"}`,
			200, `{"statusCode":200,"status":"OK","message":"Success","data":{"apiKey":"5067bd55-1aef-4c84-8987-3e966e917f07","keyId":"kid1"}}`},
		"create past validity": {"POST", "/api/v1/api-key", `{"name":"n","role":"Owner","userName":"u","description":"","validity":"2025-06-14"}`, 422, ""},
		"create editor no ws":  {"POST", "/api/v1/api-key", `{"name":"n","role":"Editor","userName":"u","description":"","validity":"2025-12-31"}`, 422, ""},
		"create bad role":      {"POST", "/api/v1/api-key", `{"name":"n","role":"God","userName":"u","description":"","validity":"2025-12-31"}`, 422, ""},
		"create unknown ws":    {"POST", "/api/v1/api-key", `{"name":"n","role":"Viewer","userName":"u","description":"","validity":"2025-12-31","workspaceName":"nope"}`, 404, ""},
		"create duplicate":     {"POST", "/api/v1/api-key", `{"name":"dup","role":"Owner","userName":"u","description":"","validity":"2025-12-31"}`, 409, ""},
		"delete":               {"DELETE", "/api/v1/api-key", `{"apiKey":"kid1"}`, 200, `{"statusCode":200,"status":"OK","message":"Success","data":{}}`},
		"delete unknown":       {"DELETE", "/api/v1/api-key", `{"apiKey":"zzz"}`, 404, ""},
		"list": {"GET", "/api/v1/api-key/list?workspaceName=ws", "", 200,
			`{"statusCode":200,"status":"OK","message":"Success","data":{"data":[{"apiKey":"kid1","name":"ws-key","role":"Editor","userName":"u","workspaceName":"ws","validity":"2025-12-31","description":"d"}]}}`},
		"list unknown ws": {"GET", "/api/v1/api-key/list?workspaceName=nope", "", 404, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, admin, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.wantBody)
			}
		})
	}
	f.do("POST", "/api/v1/api-key", admin, `{"description":"","name":"n","role":"Owner","userName":"admin","validity":"2030-01-01","workspaceName":null}`)
	want := rpc.CreateKeyRequest{Name: "n", UserName: "admin", Role: "Owner", Validity: "2030-01-01"}
	if diff := cmp.Diff(want, created.get()); diff != "" {
		t.Errorf("create request (-want +got):\n%s", diff)
	}
}

func TestServiceFailuresMapToStatuses(t *testing.T) {
	f := newFixture(t, "")
	codes := map[string]rpc.Code{
		"bad": rpc.BadRequest, "unauth": rpc.Unauthenticated, "expired": rpc.KeyExpired, "forbidden": rpc.Forbidden,
		"missing": rpc.NotFound, "conflict": rpc.Conflict, "invalid": rpc.Invalid, "notimpl": rpc.NotImplemented,
		"unavail": rpc.Unavailable, "internal": rpc.Internal,
	}
	f.serve(method(events.RPCGPRGet, func(_ context.Context, req rpc.GPRRef) (rpc.GPR, error) {
		return rpc.GPR{}, rpc.Errorf(codes[req.GPRID], "detail for %s", req.GPRID)
	}))
	owner := f.token("o", "Owner", "", time.Minute)
	tests := map[string]struct {
		status    int
		code, msg string
	}{
		"bad":       {400, "BAD_REQUEST", "detail for bad"},
		"unauth":    {401, "UNAUTHENTICATED", "Unauthenticated"},
		"expired":   {401, "UNAUTHENTICATED", "Unauthenticated"},
		"forbidden": {403, "FORBIDDEN", "detail for forbidden"},
		"missing":   {404, "NOT_FOUND", "detail for missing"},
		"conflict":  {409, "CONFLICT", "detail for conflict"},
		"invalid":   {422, "UNPROCESSABLE_ENTITY", "detail for invalid"},
		"notimpl":   {501, "NOT_IMPLEMENTED", "detail for notimpl"},
		"unavail":   {503, "UNAVAILABLE", "Service Unavailable"},
		"internal":  {500, "INTERNAL", "Internal Server Error"},
	}
	for id, tc := range tests {
		t.Run(id, func(t *testing.T) {
			r := f.do(http.MethodGet, "/api/v1/gpr?gprId="+id, owner, "")
			if r.status != tc.status || r.env["status"] != tc.code || r.env["message"] != tc.msg {
				t.Errorf("%s: got %d %s", id, r.status, r.body)
			}
		})
	}
}

// TestBodylessAndGetWithBody: no Content-Type needed without a body, and a
// GET's {} body is accepted and ignored (§1.2, §1.3).
func TestBodylessAndGetWithBody(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "ws")
	owner := f.token("o", "Owner", "", time.Minute)
	for _, body := range []string{"", "{}", "not json at all"} {
		if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", owner, body); r.status != 200 {
			t.Errorf("GET with body %q: %d %s", body, r.status, r.body)
		}
	}
	req, err := http.NewRequest(http.MethodDelete, f.http.URL+"/api/v1/gpr", strings.NewReader(`{"gprId":"gpr-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+owner) // and no Content-Type
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable { // decoded and sent on; no scheduler is listening
		t.Errorf("DELETE without Content-Type: %d, want 503 from the missing scheduler", resp.StatusCode)
	}
}
