package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// serveWorkspaceList answers the workspace list with one workspace per name.
func serveWorkspaceList(f *fixture, names ...string) {
	f.serve(method(events.RPCWorkspaceList, func(_ context.Context, req rpc.ListWorkspacesRequest) (rpc.WorkspaceList, error) {
		var l rpc.WorkspaceList
		for _, n := range names {
			if req.Scope == "" || req.Scope == n {
				l.Workspaces = append(l.Workspaces, rpc.Workspace{Name: n, Clusters: []string{"c1"}})
			}
		}
		return l, nil
	}))
}

func TestBearerAuthentication(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "ws")
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		header     string // full Authorization value; "" sends none
		wantStatus int
	}{
		"none":              {"", 401},
		"not bearer":        {"Basic dXNlcjpwdw==", 401},
		"garbage":           {"Bearer not-a-jwt", 401},
		"empty bearer":      {"Bearer ", 401},
		"expired":           {"Bearer " + f.token("k1", "Owner", "", -time.Minute), 401},
		"foreign signer":    {"Bearer " + signToken(t, otherKey, "k1", "Owner", "", time.Minute), 401},
		"unknown role":      {"Bearer " + f.token("k1", "root", "", time.Minute), 401},
		"unbound editor":    {"Bearer " + f.token("k1", "Editor", "", time.Minute), 401},
		"no subject":        {"Bearer " + f.token("", "Owner", "", time.Minute), 401},
		"wrong admin token": {"Bearer " + testAdminToken + "x", 401},
		"owner":             {"Bearer " + f.token("k1", "Owner", "", time.Minute), 200},
		"lower-case scheme": {"bearer " + f.token("k1", "Owner", "", time.Minute), 200},
		"viewer":            {"Bearer " + f.token("k2", "Viewer", "ws", time.Minute), 200},
		"admin token":       {"Bearer " + testAdminToken, 200},
		"admin login token": {"Bearer " + f.token("u1", "admin", "", time.Minute), 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, f.http.URL+"/api/v1/slice-workspace/list", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
		})
	}
}

func TestJWKSFetchedOnUnknownKidAtMostOncePerSecond(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "ws")
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := f.token("k1", "Owner", "", time.Minute)
	if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", good, ""); r.status != 200 {
		t.Fatalf("first token: %d %s", r.status, r.body)
	}
	if got := f.jwksHits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times for the first token, want 1", got)
	}
	if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", good, ""); r.status != 200 {
		t.Fatalf("second request: %d %s", r.status, r.body)
	}
	forged := signToken(t, otherKey, "k1", "Owner", "", time.Minute)
	for range 5 {
		if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", forged, ""); r.status != 401 {
			t.Fatalf("forged token: %d %s", r.status, r.body)
		}
	}
	if got := f.jwksHits.Load(); got != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (cached, then rate limited)", got)
	}
}

func TestRevokedKeyIsDenied(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "ws")
	tok := f.token("key-1", "Editor", "ws", time.Minute)
	other := f.token("key-2", "Editor", "ws", time.Minute)
	if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", tok, ""); r.status != 200 {
		t.Fatalf("before deletion: %d %s", r.status, r.body)
	}
	subject, err := events.APIKeySubject("key-1", "deleted")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := bus.NewEvent("", "egs/auth", events.EventType("apikey", "deleted"), "key-1", time.Now(), events.APIKey{KeyID: "key-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Publish(subject, mustJSON(t, ev)); err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", tok, "")
		if r.status == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked token still accepted: %d %s", r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", other, ""); r.status != 200 {
		t.Errorf("another key's token: %d %s, want 200", r.status, r.body)
	}
}

func TestRevocationExpires(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a := NewAuthenticator(nil, "", func() time.Time { return now }, nil)
	a.Revoke("k1")
	if !a.revoked("k1") || a.revoked("k2") {
		t.Fatalf("revoked(k1)=%v revoked(k2)=%v, want true false", a.revoked("k1"), a.revoked("k2"))
	}
	now = now.Add(15*time.Minute + time.Second)
	if a.revoked("k1") {
		t.Errorf("k1 still revoked after the token lifetime")
	}
	a.Revoke("k2") // sweeps k1
	if _, ok := a.denied["k1"]; ok {
		t.Errorf("expired entry not swept")
	}
}

// TestRevokeAt: a deletion read from history denies the key's tokens until
// one token lifetime after the deletion, not after the read.
func TestRevokeAt(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	a := NewAuthenticator(nil, "", func() time.Time { return now }, nil)
	a.RevokeAt("recent", now.Add(-10*time.Minute))
	a.RevokeAt("old", now.Add(-16*time.Minute)) // every token of it has expired
	if !a.revoked("recent") || a.revoked("old") {
		t.Fatalf("revoked(recent)=%v revoked(old)=%v, want true false", a.revoked("recent"), a.revoked("old"))
	}
	if _, ok := a.denied["old"]; ok {
		t.Error("a denial already over was stored")
	}
	a.Revoke("recent") // a live event after the catch-up extends it
	a.RevokeAt("recent", now.Add(-14*time.Minute))
	if got, want := a.denied["recent"], now.Add(15*time.Minute); !got.Equal(want) {
		t.Errorf("denied until %v, want %v (the later end is kept)", got, want)
	}
	now = now.Add(6 * time.Minute)
	if !a.revoked("recent") {
		t.Error("recent no longer revoked within its token lifetime")
	}
}

func TestRoles(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "ws", "other")
	f.serve(
		method(events.RPCGPRCreate, func(_ context.Context, req rpc.CreateGPRRequest) (rpc.CreateGPRReply, error) {
			return rpc.CreateGPRReply{GPRID: "gpr-7c29e338-ebda"}, nil
		}),
		method(events.RPCGPRList, func(_ context.Context, req rpc.ListGPRsRequest) (rpc.GPRList, error) {
			return rpc.GPRList{}, nil
		}),
		method(events.RPCGPRDelete, func(_ context.Context, req rpc.GPRRef) (rpc.Empty, error) { return rpc.Empty{}, nil }),
		method(events.RPCAuthKeyCreate, func(_ context.Context, req rpc.CreateKeyRequest) (rpc.CreateKeyReply, error) {
			return rpc.CreateKeyReply{APIKey: "5067bd55-1aef-4c84-8987-3e966e917f07", KeyID: "kid1"}, nil
		}),
		method(events.RPCAuthKeyList, func(_ context.Context, req rpc.ListKeysRequest) (rpc.KeyList, error) {
			return rpc.KeyList{}, nil
		}),
	)
	owner := f.token("o", "Owner", "", time.Minute)
	editor := f.token("e", "Editor", "ws", time.Minute)
	viewer := f.token("v", "Viewer", "ws", time.Minute)
	gpr := func(ws string) string {
		return `{"gprName":"g","sliceName":"` + ws + `","clusterName":"","preferredClusters":null,"enableAutoClusterSelection":true,` +
			`"enableAutoGpuSelection":true,"numberOfGPUs":1,"numberOfGPUNodes":1,"instanceType":"","gpuShape":"","memoryPerGpu":0,` +
			`"exitDuration":"0d0h5m","priority":1,"idleTimeOutDuration":null,"enforceIdleTimeOut":false,"enableEviction":null,"requeueOnFailure":null}`
	}
	const key = `{"name":"n","userName":"u","description":"","role":"Owner","validity":"2099-12-31"}`
	tests := map[string]struct {
		method, path, token, body string
		want                      int
	}{
		"viewer reads own gprs":       {"GET", "/api/v1/gpr/list?sliceName=ws", viewer, "", 200},
		"viewer reads other gprs":     {"GET", "/api/v1/gpr/list?sliceName=other", viewer, "", 403},
		"viewer creates gpr":          {"POST", "/api/v1/gpr", viewer, gpr("ws"), 403},
		"viewer deletes gpr":          {"DELETE", "/api/v1/gpr", viewer, `{"gprId":"gpr-1"}`, 403},
		"viewer updates gpr":          {"PUT", "/api/v1/gpr", viewer, `{"gprId":"gpr-1","priority":2}`, 403},
		"viewer waittime":             {"POST", "/api/v1/gpr/waittime", viewer, gpr("ws"), 403},
		"viewer kube-config":          {"POST", "/api/v1/slice-workspace/kube-config", viewer, `{"clusterName":"c1","workspaceName":"ws"}`, 403},
		"editor creates gpr":          {"POST", "/api/v1/gpr", editor, gpr("ws"), 200},
		"editor deletes gpr":          {"DELETE", "/api/v1/gpr", editor, `{"gprId":"gpr-1"}`, 200},
		"editor creates gpr in other": {"POST", "/api/v1/gpr", editor, gpr("other"), 403},
		"editor creates key":          {"POST", "/api/v1/api-key", editor, key, 403},
		"editor lists keys":           {"GET", "/api/v1/api-key/list", editor, "", 403},
		"editor creates workspace":    {"POST", "/api/v1/slice-workspace", editor, `{"workspaceName":"x","clusters":["c1"]}`, 403},
		"editor deletes workspace":    {"DELETE", "/api/v1/slice-workspace", editor, `{"workspaceName":"ws"}`, 403},
		"owner creates gpr anywhere":  {"POST", "/api/v1/gpr", owner, gpr("other"), 200},
		"owner creates key":           {"POST", "/api/v1/api-key", owner, key, 200},
		"owner lists keys":            {"GET", "/api/v1/api-key/list", owner, "", 200},
		"admin token creates key":     {"POST", "/api/v1/api-key", testAdminToken, key, 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.want {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.want)
			}
		})
	}
}

func TestWorkspaceListScopedForEditorAndViewer(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "a", "b", "c")
	tests := map[string]struct {
		token string
		want  string
	}{
		"owner":  {f.token("o", "Owner", "", time.Minute), "a,b,c"},
		"viewer": {f.token("v", "Viewer", "b", time.Minute), "b"},
		"editor": {f.token("e", "Editor", "c", time.Minute), "c"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", tc.token, "")
			var names []string
			for _, w := range r.data()["workspaces"].([]any) {
				names = append(names, w.(map[string]any)["name"].(string))
			}
			if got := joinComma(names); got != tc.want {
				t.Errorf("workspaces = %s, want %s", got, tc.want)
			}
		})
	}
}
