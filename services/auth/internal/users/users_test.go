package users

import (
	"slices"
	"testing"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// FuzzNormalize: any user spec either is refused or normalizes to a user
// whose fields all hold the invariants, and normalizing that again changes
// nothing.
func FuzzNormalize(f *testing.F) {
	f.Add("alice", "alice@example.com", "ws-a", "Editor", "ws-b", "Viewer")
	f.Add("Bob", "", "ws", "Owner", "ws", "Viewer")
	f.Add("a..b", "x@y", "", "", "WS", "admin")
	f.Add("", "@", "ws-a", "Editor", "ws-a", "Editor")
	f.Fuzz(func(t *testing.T, name, email, ws1, r1, ws2, r2 string) {
		spec := rpc.UserSpec{Username: name, Email: email, Workspaces: []rpc.WorkspaceRole{{Name: ws1, Role: r1}, {Name: ws2, Role: r2}}}
		u, err := Normalize(spec)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error %T is not a ValidationError", err)
			}
			return
		}
		if !ValidUsername(u.Username) || len(u.Workspaces) != 2 || !slices.IsSortedFunc(u.Workspaces, func(a, b rpc.WorkspaceRole) int {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}) {
			t.Fatalf("normalized %+v", u)
		}
		for _, w := range u.Workspaces {
			if !events.ValidToken(w.Name) || (w.Role != RoleOwner && w.Role != RoleEditor && w.Role != RoleViewer) {
				t.Fatalf("workspace %+v", w)
			}
		}
		again, err := Normalize(rpc.UserSpec{Username: u.Username, Email: u.Email, Workspaces: u.Workspaces})
		if err != nil || !slices.Equal(again.Workspaces, u.Workspaces) || again.Username != u.Username {
			t.Fatalf("not idempotent: %+v then %+v (%v)", u, again, err)
		}
	})
}

func TestTokenIDAndPrefix(t *testing.T) {
	s := NewSecret(TokenPrefix)
	if !IsAccessToken(s) || len(s) != len(TokenPrefix)+43 {
		t.Fatalf("secret %q", s)
	}
	h := Hash(s)
	tok := AccessToken{ID: TokenIDOf(h), Hash: h}
	if !tok.Matches(s) || tok.Matches(s+"x") || len(tok.ID) != len(TokenIDPrefix)+20 {
		t.Fatalf("token %+v", tok)
	}
}
