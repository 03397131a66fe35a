package egs

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/rpc"
)

func ptr[T any](v T) *T { return &v }

func TestDecode(t *testing.T) {
	tests := map[string]struct {
		body     string
		wantCode rpc.Code // "" means success
		wantMsg  string   // substring of the message
		want     CreateGPRBody
	}{
		"empty":            {body: "", wantCode: rpc.BadRequest},
		"blank":            {body: "  \n", wantCode: rpc.BadRequest},
		"malformed":        {body: `{"priority": 1`, wantCode: rpc.BadRequest},
		"not an object":    {body: `[1,2]`, wantCode: rpc.BadRequest},
		"null body":        {body: `null`, wantCode: rpc.BadRequest},
		"trailing data":    {body: `{} {}`, wantCode: rpc.BadRequest},
		"trailing garbage": {body: `{}x`, wantCode: rpc.BadRequest},
		"wrong type int":   {body: `{"priority":"high"}`, wantCode: rpc.Invalid, wantMsg: `"priority"`},
		"float for int":    {body: `{"numberOfGPUs":1.5}`, wantCode: rpc.Invalid, wantMsg: `"numberOfGPUs"`},
		"wrong type bool":  {body: `{"enableEviction":"yes"}`, wantCode: rpc.Invalid, wantMsg: `"enableEviction"`},
		"nested array":     {body: `{"preferredClusters":["c1",["a","b"]]}`, wantCode: rpc.Invalid, wantMsg: `"preferredClusters"`},
		"string for array": {body: `{"preferredClusters":"c1"}`, wantCode: rpc.Invalid, wantMsg: `"preferredClusters"`},
		"empty object":     {body: `{}`},
		"nulls are absent": {body: `{"priority":null,"preferredClusters":null,"enableEviction":null,"idleTimeOutDuration":null}`},
		"unknown keys ignored": {
			body: `{"priority":5,"brandNewKey":{"x":[1]}}`,
			want: CreateGPRBody{Priority: ptr(5)},
		},
		"memoryPerGpu": {body: `{"memoryPerGpu":15}`, want: CreateGPRBody{MemoryPerGPU: ptr(15)}},
		"memoryPerGPU": {body: `{"memoryPerGPU":16}`, want: CreateGPRBody{MemoryPerGPU: ptr(16)}},
		"values": {
			body: `{"gprName":"g","preferredClusters":["c1"],"enableEviction":false}`,
			want: CreateGPRBody{GPRName: ptr("g"), PreferredClusters: []string{"c1"}, EnableEviction: ptr(false)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got CreateGPRBody
			err := Decode([]byte(tc.body), &got)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
				return
			}
			var re *rpc.Error
			if !errors.As(err, &re) || re.Code != tc.wantCode {
				t.Fatalf("Decode error = %v, want code %s", err, tc.wantCode)
			}
			if !strings.Contains(re.Message, tc.wantMsg) {
				t.Errorf("message %q does not name %s", re.Message, tc.wantMsg)
			}
		})
	}
}
