package egs

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/rpc"
)

func TestCreateWorkspaceBodyRequest(t *testing.T) {
	tests := map[string]struct {
		body    CreateWorkspaceBody
		want    rpc.CreateWorkspaceRequest
		wantErr bool
	}{
		"ok": {
			body: CreateWorkspaceBody{WorkspaceName: ptr("ws"), Clusters: []string{"c1"}, Namespaces: []string{"ns1"}, Username: ptr("u"), Email: ptr("e@x")},
			want: rpc.CreateWorkspaceRequest{Name: "ws", Clusters: []string{"c1"}, Namespaces: []string{"ns1"}, Username: "u", Email: "e@x"},
		},
		"no namespaces": {
			body: CreateWorkspaceBody{WorkspaceName: ptr("ws"), Clusters: []string{"c1"}},
			want: rpc.CreateWorkspaceRequest{Name: "ws", Clusters: []string{"c1"}, Namespaces: []string{}},
		},
		"empty clusters": {body: CreateWorkspaceBody{WorkspaceName: ptr("ws"), Clusters: []string{}}, wantErr: true},
		"null clusters":  {body: CreateWorkspaceBody{WorkspaceName: ptr("ws")}, wantErr: true},
		"bad cluster":    {body: CreateWorkspaceBody{WorkspaceName: ptr("ws"), Clusters: []string{"c_1"}}, wantErr: true},
		"bad namespace":  {body: CreateWorkspaceBody{WorkspaceName: ptr("ws"), Clusters: []string{"c1"}, Namespaces: []string{"NS"}}, wantErr: true},
		"bad name":       {body: CreateWorkspaceBody{WorkspaceName: ptr("w.s"), Clusters: []string{"c1"}}, wantErr: true},
		"missing name":   {body: CreateWorkspaceBody{Clusters: []string{"c1"}}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.body.Request()
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

func TestFromWorkspaceList(t *testing.T) {
	tests := map[string]struct {
		in   rpc.WorkspaceList
		want string
	}{
		"none": {rpc.WorkspaceList{}, `{"workspaces":[]}`},
		"no namespaces": {
			rpc.WorkspaceList{Workspaces: []rpc.Workspace{{Name: "ws", Clusters: []string{"c1"}}}},
			`{"workspaces":[{"name":"ws","overlayNetworkDeploymentMode":"no-network","maxClusters":16,"sliceDescription":"","clusters":["c1"],"namespaces":[]}]}`,
		},
		"namespaces on every cluster": {
			rpc.WorkspaceList{Workspaces: []rpc.Workspace{{Name: "ws", Clusters: []string{"worker-1", "worker-2"}, Namespaces: []string{"ns1", "ns2"}}}},
			`{"workspaces":[{"name":"ws","overlayNetworkDeploymentMode":"no-network","maxClusters":16,"sliceDescription":"","clusters":["worker-1","worker-2"],` +
				`"namespaces":[{"namespace":"ns1","clusters":["worker-1","worker-2"]},{"namespace":"ns2","clusters":["worker-1","worker-2"]}]}]}`,
		},
		"null clusters": {
			rpc.WorkspaceList{Workspaces: []rpc.Workspace{{Name: "ws"}}},
			`{"workspaces":[{"name":"ws","overlayNetworkDeploymentMode":"no-network","maxClusters":16,"sliceDescription":"","clusters":[],"namespaces":[]}]}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(FromWorkspaceList(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
