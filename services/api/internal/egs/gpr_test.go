package egs

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/rpc"
)

// validGPRBody is the §6.1 example: every key present.
func validGPRBody() CreateGPRBody {
	return CreateGPRBody{
		GPRName: ptr("g"), SliceName: ptr("ws"), ClusterName: ptr("c1"), PreferredClusters: []string{"c1"},
		EnableAutoClusterSelection: ptr(false), EnableAutoGPUSelection: ptr(false),
		NumberOfGPUs: ptr(2), NumberOfGPUNodes: ptr(1), InstanceType: ptr("n1"), GPUShape: ptr("T4"),
		MemoryPerGPU: ptr(15), ExitDuration: ptr("0d0h5m"), Priority: ptr(201), IdleTimeOutDuration: ptr("0d0h1m"),
		EnforceIdleTimeOut: ptr(false), EnableEviction: ptr(true), RequeueOnFailure: ptr(false),
	}
}

func TestCreateGPRBodySpec(t *testing.T) {
	tests := map[string]struct {
		edit    func(b *CreateGPRBody)
		want    rpc.GPRSpec
		wantMsg string // "" means success
	}{
		"full": {
			edit: func(*CreateGPRBody) {},
			want: rpc.GPRSpec{
				Name: "g", Workspace: "ws", Cluster: "c1", PreferredClusters: []string{"c1"}, GPUsPerNode: 2, Nodes: 1,
				InstanceType: "n1", GPUShape: "T4", MemoryPerGPU: 15, ExitDuration: "0d0h5m", Priority: 201,
				IdleTimeout: ptr("0d0h1m"), EnableEviction: ptr(true), RequeueOnFailure: ptr(false),
			},
		},
		"full auto with nulls": {
			edit: func(b *CreateGPRBody) {
				b.ClusterName, b.PreferredClusters, b.InstanceType, b.GPUShape = ptr(""), nil, ptr(""), ptr("")
				b.EnableAutoClusterSelection, b.EnableAutoGPUSelection = ptr(true), ptr(true)
				b.EnableEviction, b.RequeueOnFailure, b.IdleTimeOutDuration, b.MemoryPerGPU = nil, nil, nil, nil
			},
			want: rpc.GPRSpec{
				Name: "g", Workspace: "ws", PreferredClusters: []string{}, AutoCluster: true, AutoGPU: true,
				GPUsPerNode: 2, Nodes: 1, ExitDuration: "0d0h5m", Priority: 201,
			},
		},
		"priority 1":             {edit: func(b *CreateGPRBody) { b.Priority = ptr(1) }},
		"priority 300":           {edit: func(b *CreateGPRBody) { b.Priority = ptr(300) }},
		"priority 0":             {edit: func(b *CreateGPRBody) { b.Priority = ptr(0) }, wantMsg: `"priority" must be an integer between 1 and 300`},
		"priority 301":           {edit: func(b *CreateGPRBody) { b.Priority = ptr(301) }, wantMsg: `"priority" must be an integer between 1 and 300`},
		"priority null":          {edit: func(b *CreateGPRBody) { b.Priority = nil }, wantMsg: `"priority" must be an integer between 1 and 300`},
		"exitDuration empty":     {edit: func(b *CreateGPRBody) { b.ExitDuration = ptr("") }, wantMsg: `"exitDuration" is not allowed to be empty`},
		"exitDuration null":      {edit: func(b *CreateGPRBody) { b.ExitDuration = nil }, wantMsg: `"exitDuration" is not allowed to be empty`},
		"bad sliceName":          {edit: func(b *CreateGPRBody) { b.SliceName = ptr("My WS") }, wantMsg: `"sliceName" must be a DNS-style name ([a-z0-9-], at most 63 characters)`},
		"no sliceName":           {edit: func(b *CreateGPRBody) { b.SliceName = nil }, wantMsg: `"sliceName" must be a DNS-style name ([a-z0-9-], at most 63 characters)`},
		"blank gprName":          {edit: func(b *CreateGPRBody) { b.GPRName = ptr("   ") }, wantMsg: `"gprName" must be 1 to 253 printable characters`},
		"control char gprName":   {edit: func(b *CreateGPRBody) { b.GPRName = ptr("a\nb") }, wantMsg: `"gprName" must be 1 to 253 printable characters`},
		"bad clusterName":        {edit: func(b *CreateGPRBody) { b.ClusterName = ptr("C1") }, wantMsg: `"clusterName" must be a DNS-style name ([a-z0-9-], at most 63 characters)`},
		"bad preferred":          {edit: func(b *CreateGPRBody) { b.PreferredClusters = []string{"c1", ""} }, wantMsg: `"preferredClusters" must hold DNS-style cluster names`},
		"zero gpus":              {edit: func(b *CreateGPRBody) { b.NumberOfGPUs = ptr(0) }, wantMsg: `"numberOfGPUs" must be a positive integer`},
		"no nodes":               {edit: func(b *CreateGPRBody) { b.NumberOfGPUNodes = nil }, wantMsg: `"numberOfGPUNodes" must be a positive integer`},
		"negative memory":        {edit: func(b *CreateGPRBody) { b.MemoryPerGPU = ptr(-1) }, wantMsg: `"memoryPerGpu" must not be negative`},
		"empty idle means unset": {edit: func(b *CreateGPRBody) { b.IdleTimeOutDuration = ptr("") }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := validGPRBody()
			tc.edit(&b)
			got, err := b.Spec()
			if tc.wantMsg != "" {
				var re *rpc.Error
				if !errors.As(err, &re) || re.Code != rpc.Invalid || re.Message != tc.wantMsg {
					t.Fatalf("Spec error = %v, want UNPROCESSABLE_ENTITY %q", err, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Spec: %v", err)
			}
			if tc.want.Name == "" {
				return // only checks that it is accepted
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWaitTimeSpec(t *testing.T) {
	b := validGPRBody()
	b.GPRName, b.RequestName = nil, ptr("probe")
	spec, err := b.WaitTimeSpec()
	if err != nil {
		t.Fatalf("WaitTimeSpec: %v", err)
	}
	if spec.Name != "probe" {
		t.Errorf("name = %q, want probe", spec.Name)
	}
	b.RequestName = nil
	if _, err := b.WaitTimeSpec(); err != nil {
		t.Errorf("WaitTimeSpec without a name: %v", err)
	}
	if _, err := b.Spec(); err == nil {
		t.Errorf("Spec without gprName: no error")
	}
}

func TestUpdateGPRBodyRequest(t *testing.T) {
	caller := rpc.Caller{Subject: "k1", Role: RoleEditor, Workspace: "ws"}
	tests := map[string]struct {
		body    UpdateGPRBody
		want    rpc.UpdateGPRRequest
		wantErr bool
	}{
		"priority": {body: UpdateGPRBody{GPRID: ptr("gpr-1"), Priority: ptr(150)},
			want: rpc.UpdateGPRRequest{Caller: caller, GPRID: "gpr-1", Priority: ptr(150)}},
		"all three": {body: UpdateGPRBody{GPRID: ptr("gpr-1"), Priority: ptr(2), GPRName: ptr("n"), EarlyRelease: ptr(true)},
			want: rpc.UpdateGPRRequest{Caller: caller, GPRID: "gpr-1", Priority: ptr(2), Name: ptr("n"), EarlyRelease: ptr(true)}},
		"early release": {body: UpdateGPRBody{GPRID: ptr("gpr-1"), EarlyRelease: ptr(true)},
			want: rpc.UpdateGPRRequest{Caller: caller, GPRID: "gpr-1", EarlyRelease: ptr(true)}},
		"no id":         {body: UpdateGPRBody{Priority: ptr(2)}, wantErr: true},
		"priority 0":    {body: UpdateGPRBody{GPRID: ptr("gpr-1"), Priority: ptr(0)}, wantErr: true},
		"priority 301":  {body: UpdateGPRBody{GPRID: ptr("gpr-1"), Priority: ptr(301)}, wantErr: true},
		"nothing to do": {body: UpdateGPRBody{GPRID: ptr("gpr-1")}, wantErr: true},
		"bad rename":    {body: UpdateGPRBody{GPRID: ptr("gpr-1"), GPRName: ptr("")}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.body.Request(caller)
			if tc.wantErr {
				if rpc.CodeOf(err) != rpc.Invalid {
					t.Fatalf("Request error = %v, want UNPROCESSABLE_ENTITY", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromGPR(t *testing.T) {
	created := time.Date(2024, 12, 24, 8, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		in   rpc.GPR
		want GPR
	}{
		"queued": {
			in: rpc.GPR{
				GPRID: "gpr-b900c98b-27a6", Name: "created-by-coreapi", Workspace: "pink", Cluster: "worker-1",
				GPUsPerNode: 1, Nodes: 1, InstanceType: "n1-highcpu-2", GPUShape: "Tesla-T4", MemoryPerGPU: 15,
				Priority: 201, ExitDuration: time.Minute, IdleTimeout: time.Minute, EnforceIdleTimeout: true,
				ProvisioningStatus: "Queued", InternalState: "Queued", CreatedAt: created,
				EstimatedStart: time.Date(2024, 12, 24, 8, 13, 8, 0, time.UTC), QueuePosition: 3,
				PendingReasons: []rpc.Reason{{Code: "WORKSPACE_HOLDS_GPR", Message: "workspace pink already holds gpr-1"}},
			},
			want: GPR{
				GPRID: "gpr-b900c98b-27a6", GPRName: "created-by-coreapi", SliceName: "pink", ClusterName: "worker-1",
				NumberOfGPUs: 1, NumberOfGPUNodes: 1, InstanceType: "n1-highcpu-2", GPUShape: "Tesla-T4", MemoryPerGPU: 15,
				Priority: 201, GPUSharingMode: "Virtual Machine", EstimatedStartTime: "2024-12-24T08:13:08Z",
				EstimatedWaitTime: "0h0m0s", ExitDuration: "0h1m0s", EnforceIdleTimeOut: true, IdleTimeOutDuration: "0h1m0s",
				Status:         GPRStatus{ProvisioningStatus: "Queued", InternalState: "Queued", Nodes: []string{}},
				QueuePosition:  3,
				PendingReasons: []rpc.Reason{{Code: "WORKSPACE_HOLDS_GPR", Message: "workspace pink already holds gpr-1"}},
			},
		},
		"provisioned multi-node": {
			in: rpc.GPR{
				GPRID: "gpr-1", Name: "g", Workspace: "ws", Cluster: "c1", GPUsPerNode: 8, Nodes: 2,
				ExitDuration: 26 * time.Hour, EstimatedWait: 160 * time.Second, Priority: 1,
				ProvisioningStatus: "Successful", InternalState: "Provisioned", GPUsAllocated: 16,
				NodeNames: []string{"n1", "n2"}, StartedAt: created, RetryCount: 1, DelayedCount: 2,
			},
			want: GPR{
				GPRID: "gpr-1", GPRName: "g", SliceName: "ws", ClusterName: "c1", NumberOfGPUs: 8, NumberOfGPUNodes: 2,
				Priority: 1, GPUSharingMode: "Virtual Machine", EstimatedWaitTime: "0h2m40s", ExitDuration: "26h0m0s",
				MultiNode: true,
				Status: GPRStatus{ProvisioningStatus: "Successful", InternalState: "Provisioned", NumGPUsAllocated: 16,
					StartTimestamp: "2024-12-24T08:00:00Z", Nodes: []string{"n1", "n2"}, RetryCount: 1, DelayedCount: 2},
				PendingReasons: []rpc.Reason{},
			},
		},
		"failed": {
			in: rpc.GPR{GPRID: "gpr-2", ProvisioningStatus: "Error", FailureReason: "no capacity", EarlyRelease: true,
				CompletedAt: created},
			want: GPR{GPRID: "gpr-2", GPUSharingMode: "Virtual Machine", EstimatedWaitTime: "0h0m0s", ExitDuration: "0h0m0s",
				EarlyRelease: true,
				Status: GPRStatus{ProvisioningStatus: "Error", FailureReason: "no capacity",
					CompletionTimestamp: "2024-12-24T08:00:00Z", Nodes: []string{}},
				PendingReasons: []rpc.Reason{}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, FromGPR(tc.in)); diff != "" {
				t.Errorf("FromGPR (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGPRWireKeys pins the exact keys and JSON types of a GPR object (§6.4).
func TestGPRWireKeys(t *testing.T) {
	b, err := json.Marshal(FromGPR(rpc.GPR{}))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"gprId": "string", "gprName": "string", "sliceName": "string", "clusterName": "string",
		"numberOfGPUs": "number", "numberOfGPUNodes": "number", "instanceType": "string", "gpuShape": "string",
		"memoryPerGPU": "number", "priority": "number", "gpuSharingMode": "string", "estimatedStartTime": "string",
		"estimatedWaitTime": "string", "exitDuration": "string", "earlyRelease": "bool", "multiNode": "bool",
		"dedicatedNodes": "bool", "enableRDMA": "bool", "enableSecondaryNetwork": "bool", "status": "object",
		"enforceIdleTimeOut": "bool", "idleTimeOutDuration": "string",
		"queuePosition": "number", "pendingReasons": "array", "evictedBy": "string",
	}
	if diff := cmp.Diff(want, jsonTypes(m)); diff != "" {
		t.Errorf("GPR keys (-want +got):\n%s", diff)
	}
	wantStatus := map[string]string{
		"provisioningStatus": "string", "failureReason": "string", "numGpusAllocated": "number",
		"startTimestamp": "string", "completionTimestamp": "string", "cost": "string", "nodes": "array",
		"internalState": "string", "retryCount": "number", "delayedCount": "number",
	}
	status, _ := m["status"].(map[string]any)
	if diff := cmp.Diff(wantStatus, jsonTypes(status)); diff != "" {
		t.Errorf("status keys (-want +got):\n%s", diff)
	}
}

// jsonTypes maps each key of m to the JSON type of its value ("null" for null).
func jsonTypes(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v.(type) {
		case string:
			out[k] = "string"
		case float64:
			out[k] = "number"
		case bool:
			out[k] = "bool"
		case map[string]any:
			out[k] = "object"
		case []any:
			out[k] = "array"
		case nil:
			out[k] = "null"
		}
	}
	return out
}

func TestFromGPRListEmpty(t *testing.T) {
	b, err := json.Marshal(FromGPRList(rpc.GPRList{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"items":[]}` {
		t.Errorf("empty list = %s, want {\"items\":[]}", got)
	}
	l := FromGPRList(rpc.GPRList{Items: []rpc.GPR{{GPRID: "b"}, {GPRID: "a"}}})
	ids := []string{l.Items[0].GPRID, l.Items[1].GPRID}
	if !sort.IsSorted(sort.Reverse(sort.StringSlice(ids))) {
		t.Errorf("order not kept: %v", ids)
	}
}

func TestDisplayNames(t *testing.T) {
	for name, want := range map[string]bool{
		"Llama_Train v2": true, "created-by-coreapi": true, "训练": true, strings.Repeat("x", 253): true,
		"": false, "  ": false, "tab\there": false, strings.Repeat("x", 254): false,
	} {
		if got := validDisplayName(name, MaxDisplayNameLen); got != want {
			t.Errorf("validDisplayName(%q) = %v, want %v", name, got, want)
		}
	}
}
