package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// templateWire is the contract's §7.1 example body.
const templateWire = `{"clusterName": "c1", "enableEviction": true, "enforceIdleTimeOut": true, "exitDuration": "0d0h5m",
 "gpuShape": "T4", "idleTimeOutDuration": "0d0h2m", "instanceType": "n1", "memoryPerGpu": 15, "name": "t1",
 "numberOfGPUNodes": 1, "numberOfGPUs": 1, "priority": 201, "requeueOnFailure": false}`

// storedT1 is t1 as the workspace service answers it (durations normalised, D8).
var storedT1 = rpc.Template{Name: "t1", ClusterName: "c1", GPUShape: "T4", InstanceType: "n1", ExitDuration: "0h5m0s",
	NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 201, MemoryPerGPU: 15, EnforceIdleTimeOut: true,
	IdleTimeOutDuration: "0h2m0s", EnableEviction: true}

const okEmpty = `{"statusCode":200,"status":"OK","message":"Success","data":{}}`

func serveTemplates(f *fixture, list []rpc.Template, created, updated *recorder[rpc.Template]) {
	notFound := func(name string) error { return rpc.Errorf(rpc.NotFound, "GPR template %q not found", name) }
	f.serve(
		method(events.RPCTemplateCreate, func(_ context.Context, req rpc.Template) (rpc.Template, error) {
			created.set(req)
			if req.Name == "dup" {
				return rpc.Template{}, rpc.Errorf(rpc.Conflict, "GPR template %q already exists", req.Name)
			}
			return req, nil
		}),
		method(events.RPCTemplateGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Template, error) {
			if req.Name != "t1" {
				return rpc.Template{}, notFound(req.Name)
			}
			return storedT1, nil
		}),
		method(events.RPCTemplateList, func(context.Context, rpc.Empty) ([]rpc.Template, error) { return list, nil }),
		method(events.RPCTemplateUpdate, func(_ context.Context, req rpc.Template) (rpc.Template, error) {
			updated.set(req)
			if req.Name != "t1" {
				return rpc.Template{}, notFound(req.Name)
			}
			return req, nil
		}),
		method(events.RPCTemplateDelete, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Empty, error) {
			if req.Name != "t1" {
				return rpc.Empty{}, notFound(req.Name)
			}
			return rpc.Empty{}, nil
		}),
	)
}

func TestTemplateEndpoints(t *testing.T) {
	f := newFixture(t, "")
	var created, updated recorder[rpc.Template]
	serveTemplates(f, []rpc.Template{storedT1}, &created, &updated)
	owner := f.token("o", "Owner", "", time.Minute)
	edit := func(from, to string) string { return strings.Replace(templateWire, from, to, 1) }
	const t1Data = `{"name":"t1","clusterName":"c1","numberOfGPUs":1,"numberOfGPUNodes":1,"memoryPerGpu":15,"gpuShape":"T4",` +
		`"instanceType":"n1","exitDuration":"0h5m0s","priority":201,"enforceIdleTimeOut":true,"idleTimeOutDuration":"0h2m0s",` +
		`"enableEviction":true,"requeueOnFailure":false}`
	tests := map[string]struct {
		method, path, body string
		wantStatus         int
		wantBody           string // exact, when set
	}{
		// §7.1: data is exactly {gprTemplateName}.
		"create": {"POST", "/api/v1/gpr-template", templateWire, 200,
			`{"statusCode":200,"status":"OK","message":"Success","data":{"gprTemplateName":"t1"}}`},
		"create memoryPerGPU spelling": {"POST", "/api/v1/gpr-template", edit(`"memoryPerGpu"`, `"memoryPerGPU"`), 200, ""},
		"create without idle key":      {"POST", "/api/v1/gpr-template", edit(`"idleTimeOutDuration": "0d0h2m", `, ``), 200, ""},
		"create duplicate":             {"POST", "/api/v1/gpr-template", edit(`"name": "t1"`, `"name": "dup"`), 409, ""},
		"create bad name":              {"POST", "/api/v1/gpr-template", edit(`"name": "t1"`, `"name": "T 1"`), 422, ""},
		"create priority 301":          {"POST", "/api/v1/gpr-template", edit(`"priority": 201`, `"priority": 301`), 422, ""},
		"create no gpus":               {"POST", "/api/v1/gpr-template", edit(`"numberOfGPUs": 1`, `"numberOfGPUs": 0`), 422, ""},
		"create gpus as string":        {"POST", "/api/v1/gpr-template", edit(`"numberOfGPUs": 1`, `"numberOfGPUs": "1"`), 422, ""},
		"create empty exit": {"POST", "/api/v1/gpr-template", edit(`"exitDuration": "0d0h5m"`, `"exitDuration": ""`), 422,
			`{"statusCode":422,"status":"UNPROCESSABLE_ENTITY","message":"\"exitDuration\" is not allowed to be empty","data":null,` +
				`"error":{"errorKey":"UNPROCESSABLE_ENTITY","message":"\"exitDuration\" is not allowed to be empty","data":null}}`},
		"create malformed": {"POST", "/api/v1/gpr-template", `{"name":`, 400, ""},
		// §7.2: the 12 keys with memoryPerGpu, plus idleTimeOutDuration.
		"get":         {"GET", "/api/v1/gpr-template?gprTemplateName=t1", "", 200, `{"statusCode":200,"status":"OK","message":"Success","data":` + t1Data + `}`},
		"get unknown": {"GET", "/api/v1/gpr-template?gprTemplateName=t9", "", 404, ""},
		"get no name": {"GET", "/api/v1/gpr-template", "", 422, ""},
		// §7.3: GET with the body {}.
		"list": {"GET", "/api/v1/gpr-template/list", "{}", 200, `{"statusCode":200,"status":"OK","message":"Success","data":{"items":[` + t1Data + `]}}`},
		// §7.4: data {}; enforceIdleTimeOut true with a null duration goes on (D10 is the service's).
		"update":         {"PUT", "/api/v1/gpr-template", edit(`"idleTimeOutDuration": "0d0h2m"`, `"idleTimeOutDuration": null`), 200, okEmpty},
		"update unknown": {"PUT", "/api/v1/gpr-template", edit(`"name": "t1"`, `"name": "t9"`), 404, ""},
		"update invalid": {"PUT", "/api/v1/gpr-template", edit(`"priority": 201`, `"priority": 0`), 422, ""},
		// §7.5.
		"delete":         {"DELETE", "/api/v1/gpr-template", `{"gprTemplateName":"t1"}`, 200, okEmpty},
		"delete unknown": {"DELETE", "/api/v1/gpr-template", `{"gprTemplateName":"t9"}`, 404, ""},
		"delete no name": {"DELETE", "/api/v1/gpr-template", `{}`, 422, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, owner, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.wantBody)
			}
		})
	}

	f.do("POST", "/api/v1/gpr-template", owner, templateWire)
	want := rpc.Template{Name: "t1", ClusterName: "c1", GPUShape: "T4", InstanceType: "n1", ExitDuration: "0d0h5m",
		NumberOfGPUs: 1, NumberOfGPUNodes: 1, Priority: 201, MemoryPerGPU: 15, EnforceIdleTimeOut: true,
		IdleTimeOutDuration: "0d0h2m", EnableEviction: true}
	if diff := cmp.Diff(want, created.get()); diff != "" {
		t.Errorf("create request (-want +got):\n%s", diff)
	}
	f.do("PUT", "/api/v1/gpr-template", owner, strings.Replace(templateWire, `"idleTimeOutDuration": "0d0h2m", `, ``, 1))
	want.IdleTimeOutDuration = ""
	if diff := cmp.Diff(want, updated.get()); diff != "" {
		t.Errorf("update request (-want +got):\n%s", diff)
	}
}

func TestTemplateListEmpty(t *testing.T) {
	f := newFixture(t, "")
	var rec recorder[rpc.Template]
	serveTemplates(f, nil, &rec, &rec)
	r := f.do("GET", "/api/v1/gpr-template/list", f.token("v", "Viewer", "ws", time.Minute), "{}")
	if want := `{"statusCode":200,"status":"OK","message":"Success","data":{"items":[]}}`; r.body != want {
		t.Errorf("empty list\n got %s\nwant %s", r.body, want)
	}
}

// TestTemplateRoles: templates are global, so every role reads them and only
// an Owner or the admin writes them.
func TestTemplateRoles(t *testing.T) {
	f := newFixture(t, "")
	var rec recorder[rpc.Template]
	serveTemplates(f, []rpc.Template{storedT1}, &rec, &rec)
	tokens := map[string]string{
		"admin":  testAdminToken,
		"owner":  f.token("o", "Owner", "", time.Minute),
		"editor": f.token("e", "Editor", "ws", time.Minute),
		"viewer": f.token("v", "Viewer", "ws", time.Minute),
	}
	calls := []struct{ method, path, body string }{
		{"POST", "/api/v1/gpr-template", templateWire},
		{"GET", "/api/v1/gpr-template?gprTemplateName=t1", ""},
		{"GET", "/api/v1/gpr-template/list", "{}"},
		{"PUT", "/api/v1/gpr-template", templateWire},
		{"DELETE", "/api/v1/gpr-template", `{"gprTemplateName":"t1"}`},
	}
	for role, tok := range tokens {
		for _, c := range calls {
			want := 200
			if c.method != "GET" && (role == "editor" || role == "viewer") {
				want = 403
			}
			if r := f.do(c.method, c.path, tok, c.body); r.status != want {
				t.Errorf("%s %s as %s = %d %s, want %d", c.method, c.path, role, r.status, r.body, want)
			}
		}
	}
}

// serveBindings stands in for the workspace service: workspaces ws
// (namespaces egs-project, ns2) and other, a binding for each.
func serveBindings(f *fixture, seen *recorder[rpc.Binding]) {
	workspaces := map[string]rpc.Workspace{
		"ws":    {Name: "ws", Clusters: []string{"c1"}, Namespaces: []string{"egs-project", "ns2"}},
		"other": {Name: "other", Clusters: []string{"c2"}, Namespaces: []string{"other"}},
	}
	bindings := []rpc.Binding{
		{Name: "other", Clusters: []rpc.BindingCluster{{ClusterName: "c2", Templates: []string{}}}},
		{Name: "ws", EnableAutoGPR: true, Clusters: []rpc.BindingCluster{{ClusterName: "c1", DefaultTemplateName: "t1", Templates: []string{"t1"}}}},
	}
	write := func(_ context.Context, req rpc.Binding) (rpc.Binding, error) {
		seen.set(req)
		if _, ok := workspaces[req.Name]; !ok {
			return rpc.Binding{}, rpc.Errorf(rpc.NotFound, "workspace %q not found", req.Name)
		}
		for _, c := range req.Clusters {
			if c.ClusterName != "c1" && c.ClusterName != "c2" {
				return rpc.Binding{}, rpc.Errorf(rpc.Invalid, "cluster %q is not a cluster of workspace %s", c.ClusterName, req.Name)
			}
		}
		return req, nil
	}
	f.serve(
		method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
			if w, ok := workspaces[req.Name]; ok {
				return w, nil
			}
			return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %q not found", req.Name)
		}),
		method(events.RPCWorkspaceList, func(_ context.Context, req rpc.ListWorkspacesRequest) (rpc.WorkspaceList, error) {
			var l rpc.WorkspaceList
			for _, n := range []string{"other", "ws"} {
				if req.Scope == "" || req.Scope == n {
					l.Workspaces = append(l.Workspaces, workspaces[n])
				}
			}
			return l, nil
		}),
		method(events.RPCBindingCreate, write),
		method(events.RPCBindingUpdate, write),
		method(events.RPCBindingGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Binding, error) {
			for _, b := range bindings {
				if b.Name == req.Name {
					return b, nil
				}
			}
			return rpc.Binding{}, rpc.Errorf(rpc.NotFound, "template binding %q not found", req.Name)
		}),
		method(events.RPCBindingList, func(context.Context, rpc.Empty) ([]rpc.Binding, error) { return bindings, nil }),
		method(events.RPCBindingDelete, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Empty, error) {
			if _, ok := workspaces[req.Name]; !ok {
				return rpc.Empty{}, rpc.Errorf(rpc.NotFound, "template binding %q not found", req.Name)
			}
			return rpc.Empty{}, nil
		}),
	)
}

// bindingWire is the contract's §8.1 example body.
const bindingWire = `{"clusters": [{"clusterName": "c1", "defaultTemplateName": "t1", "templates": ["t1"]}], "enableAutoGPR": true, "workspaceName": "ws"}`

// The golden responses of §8.1/§8.4 (exactly four keys, five per cluster)
// and §8.2 (no namespace).
const (
	bindingWithNamespace = `{"statusCode":200,"status":"OK","message":"Success","data":{"name":"ws","namespace":"egs-project",` +
		`"clusters":[{"clusterName":"c1","defaultTemplateName":"t1","templates":["t1"],"defaultTemplateStatus":"","templateStatus":{}}],` +
		`"enableAutoGPR":true}}`
	bindingGet = `{"statusCode":200,"status":"OK","message":"Success","data":{"name":"ws",` +
		`"clusters":[{"clusterName":"c1","defaultTemplateName":"t1","templates":["t1"],"defaultTemplateStatus":"","templateStatus":{}}],` +
		`"enableAutoGPR":true}}`
)

func TestBindingEndpoints(t *testing.T) {
	f := newFixture(t, "")
	var seen recorder[rpc.Binding]
	serveBindings(f, &seen)
	owner := f.token("o", "Owner", "", time.Minute)
	edit := func(from, to string) string { return strings.Replace(bindingWire, from, to, 1) }
	tests := map[string]struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		"create":                    {"POST", "/api/v1/gpr-template-binding", bindingWire, 200, bindingWithNamespace},
		"create unknown workspace":  {"POST", "/api/v1/gpr-template-binding", edit(`"ws"`, `"nope"`), 404, ""},
		"create cluster outside":    {"POST", "/api/v1/gpr-template-binding", edit(`"c1"`, `"c9"`), 422, ""},
		"create null cluster name":  {"POST", "/api/v1/gpr-template-binding", edit(`"clusterName": "c1"`, `"clusterName": null`), 422, ""},
		"create bad template name":  {"POST", "/api/v1/gpr-template-binding", edit(`["t1"]`, `["T 1"]`), 422, ""},
		"create clusters as object": {"POST", "/api/v1/gpr-template-binding", edit(`"clusters": [`, `"clusters": {"a":[`) + "}", 422, ""},
		"create bad workspace name": {"POST", "/api/v1/gpr-template-binding", edit(`"ws"`, `"w s"`), 422, ""},
		"get":                       {"GET", "/api/v1/gpr-template-binding?gprTemplateBindingName=ws", "", 200, bindingGet},
		"get unknown":               {"GET", "/api/v1/gpr-template-binding?gprTemplateBindingName=nope", "", 404, ""},
		"get no name":               {"GET", "/api/v1/gpr-template-binding", "", 422, ""},
		"list": {"GET", "/api/v1/gpr-template-binding/list", "{}", 200, `{"statusCode":200,"status":"OK","message":"Success","data":{"templateBindings":[` +
			`{"name":"other","namespace":"other","clusters":[{"clusterName":"c2","defaultTemplateName":"","templates":[],"defaultTemplateStatus":"","templateStatus":{}}],"enableAutoGPR":false},` +
			`{"name":"ws","namespace":"egs-project","clusters":[{"clusterName":"c1","defaultTemplateName":"t1","templates":["t1"],"defaultTemplateStatus":"","templateStatus":{}}],"enableAutoGPR":true}]}}`},
		"update":         {"PUT", "/api/v1/gpr-template-binding", bindingWire, 200, bindingWithNamespace},
		"update unknown": {"PUT", "/api/v1/gpr-template-binding", edit(`"ws"`, `"nope"`), 404, ""},
		"delete":         {"DELETE", "/api/v1/gpr-template-binding", `{"gprTemplateBindingName":"ws"}`, 200, okEmpty},
		"delete unknown": {"DELETE", "/api/v1/gpr-template-binding", `{"gprTemplateBindingName":"nope"}`, 404, ""},
		"delete no name": {"DELETE", "/api/v1/gpr-template-binding", `{}`, 422, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, owner, tc.body)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d %s, want %d", r.status, r.body, tc.wantStatus)
			}
			if tc.wantBody != "" && r.body != tc.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tc.wantBody)
			}
		})
	}

	// A null templates list goes to the service as [] and comes back as [].
	r := f.do("POST", "/api/v1/gpr-template-binding", owner,
		`{"clusters": [{"clusterName": "c1", "defaultTemplateName": null, "templates": null}], "enableAutoGPR": null, "workspaceName": "ws"}`)
	want := rpc.Binding{Name: "ws", Clusters: []rpc.BindingCluster{{ClusterName: "c1", Templates: []string{}}}}
	if diff := cmp.Diff(want, seen.get()); diff != "" {
		t.Errorf("create request (-want +got):\n%s", diff)
	}
	const wantBody = `{"statusCode":200,"status":"OK","message":"Success","data":{"name":"ws","namespace":"egs-project",` +
		`"clusters":[{"clusterName":"c1","defaultTemplateName":"","templates":[],"defaultTemplateStatus":"","templateStatus":{}}],` +
		`"enableAutoGPR":false}}`
	if r.body != wantBody {
		t.Errorf("create with nulls\n got %s\nwant %s", r.body, wantBody)
	}
	// No clusters: clusters is [] (§1.7).
	r = f.do("PUT", "/api/v1/gpr-template-binding", owner, `{"clusters": null, "enableAutoGPR": false, "workspaceName": "ws"}`)
	if want := `{"statusCode":200,"status":"OK","message":"Success","data":{"name":"ws","namespace":"egs-project","clusters":[],"enableAutoGPR":false}}`; r.body != want {
		t.Errorf("update without clusters\n got %s\nwant %s", r.body, want)
	}
}

// TestBindingRoles: a binding belongs to its workspace. Every role reads it,
// an Owner, the admin or the workspace's Editor writes it, and a caller
// bound to another workspace gets 403; the list shows such a caller its own only.
func TestBindingRoles(t *testing.T) {
	f := newFixture(t, "")
	var seen recorder[rpc.Binding]
	serveBindings(f, &seen)
	tokens := map[string]string{
		"admin":        testAdminToken,
		"owner":        f.token("o", "Owner", "", time.Minute),
		"editor":       f.token("e", "Editor", "ws", time.Minute),
		"viewer":       f.token("v", "Viewer", "ws", time.Minute),
		"other editor": f.token("e2", "Editor", "other", time.Minute),
		"other viewer": f.token("v2", "Viewer", "other", time.Minute),
	}
	calls := []struct{ method, path, body string }{
		{"POST", "/api/v1/gpr-template-binding", bindingWire},
		{"GET", "/api/v1/gpr-template-binding?gprTemplateBindingName=ws", ""},
		{"PUT", "/api/v1/gpr-template-binding", bindingWire},
		{"DELETE", "/api/v1/gpr-template-binding", `{"gprTemplateBindingName":"ws"}`},
	}
	for role, tok := range tokens {
		for _, c := range calls {
			want := 200
			switch {
			case strings.HasPrefix(role, "other"):
				want = 403
			case role == "viewer" && c.method != "GET":
				want = 403
			}
			if r := f.do(c.method, c.path, tok, c.body); r.status != want {
				t.Errorf("%s %s as %s = %d %s, want %d", c.method, c.path, role, r.status, r.body, want)
			}
		}
	}
	for role, wantNames := range map[string]string{"owner": "other,ws", "viewer": "ws", "other editor": "other"} {
		r := f.do("GET", "/api/v1/gpr-template-binding/list", tokens[role], "{}")
		var names []string
		for _, b := range r.data()["templateBindings"].([]any) {
			names = append(names, b.(map[string]any)["name"].(string))
		}
		if joinComma(names) != wantNames {
			t.Errorf("list as %s = %v, want %s", role, names, wantNames)
		}
	}
}

// TestTemplatesWithoutService: no workspace service answering is 503.
func TestTemplatesWithoutService(t *testing.T) {
	f := newFixture(t, "")
	owner := f.token("o", "Owner", "", time.Minute)
	for _, path := range []string{"/api/v1/gpr-template/list", "/api/v1/gpr-template-binding/list"} {
		if r := f.do(http.MethodGet, path, owner, "{}"); r.status != http.StatusServiceUnavailable {
			t.Errorf("GET %s = %d %s, want 503", path, r.status, r.body)
		}
	}
}
