package egs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/rpc"
)

func TestCreateKeyBodyRequest(t *testing.T) {
	now := time.Date(2025, 6, 15, 23, 59, 0, 0, time.UTC)
	tests := map[string]struct {
		body    CreateKeyBody
		want    rpc.CreateKeyRequest
		wantErr bool
	}{
		"editor": {
			body: CreateKeyBody{Name: ptr("n"), UserName: ptr("u"), Description: ptr("d"), Role: ptr("Editor"), Validity: ptr("2025-12-31"), WorkspaceName: ptr("ws")},
			want: rpc.CreateKeyRequest{Name: "n", UserName: "u", Description: "d", Role: "Editor", Validity: "2025-12-31", Workspace: "ws"},
		},
		"owner drops workspace": {
			body: CreateKeyBody{Name: ptr("n"), Role: ptr("Owner"), Validity: ptr("2025-06-15"), WorkspaceName: ptr("ws")},
			want: rpc.CreateKeyRequest{Name: "n", Role: "Owner", Validity: "2025-06-15"},
		},
		"validity today is fine": {
			body: CreateKeyBody{Name: ptr("n"), Role: ptr("Viewer"), Validity: ptr("2025-06-15"), WorkspaceName: ptr("ws")},
			want: rpc.CreateKeyRequest{Name: "n", Role: "Viewer", Validity: "2025-06-15", Workspace: "ws"},
		},
		"validity in the past": {body: CreateKeyBody{Name: ptr("n"), Role: ptr("Owner"), Validity: ptr("2025-06-14")}, wantErr: true},
		"validity malformed":   {body: CreateKeyBody{Name: ptr("n"), Role: ptr("Owner"), Validity: ptr("31/12/2025")}, wantErr: true},
		"validity missing":     {body: CreateKeyBody{Name: ptr("n"), Role: ptr("Owner")}, wantErr: true},
		"bad role":             {body: CreateKeyBody{Name: ptr("n"), Role: ptr("owner"), Validity: ptr("2025-12-31")}, wantErr: true},
		"editor without ws":    {body: CreateKeyBody{Name: ptr("n"), Role: ptr("Editor"), Validity: ptr("2025-12-31")}, wantErr: true},
		"viewer with bad ws":   {body: CreateKeyBody{Name: ptr("n"), Role: ptr("Viewer"), Validity: ptr("2025-12-31"), WorkspaceName: ptr("W S")}, wantErr: true},
		"no name":              {body: CreateKeyBody{Role: ptr("Owner"), Validity: ptr("2025-12-31")}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.body.Request(now)
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

func TestFromKeyList(t *testing.T) {
	tests := map[string]struct {
		in   rpc.KeyList
		want string
	}{
		"empty": {rpc.KeyList{}, `{"data":[]}`},
		"one": {
			rpc.KeyList{Keys: []rpc.KeyInfo{{KeyID: "k1", Name: "ws-key", Role: "Editor", UserName: "u", Workspace: "ws", Validity: "2025-12-31", Description: "d"}}},
			`{"data":[{"apiKey":"k1","name":"ws-key","role":"Editor","userName":"u","workspaceName":"ws","validity":"2025-12-31","description":"d"}]}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(FromKeyList(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
		})
	}
}
