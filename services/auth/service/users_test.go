package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/auth/service"
)

// auditLog records every egs.auth.v1 event payload by subject.
type auditLog struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func recordAudit(t *testing.T, nc *nats.Conn) *auditLog {
	t.Helper()
	l := &auditLog{}
	sub, err := nc.Subscribe(events.SubjectAuthAll, func(m *nats.Msg) { l.mu.Lock(); l.msgs = append(l.msgs, m); l.mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitSubject waits for an event whose subject has prefix and suffix and
// returns its raw body.
func (l *auditLog) waitSubject(t *testing.T, prefix, suffix string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, m := range l.msgs {
			if strings.HasPrefix(m.Subject, prefix) && strings.HasSuffix(m.Subject, suffix) {
				l.mu.Unlock()
				return string(m.Data)
			}
		}
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no event %s*%s", prefix, suffix)
	return ""
}

func (l *auditLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, m := range l.msgs {
		b.WriteString(m.Subject + " " + string(m.Data) + "\n")
	}
	return b.String()
}

func TestUsersTokensAndLogins(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	ctx := context.Background()
	wkv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces})
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range []string{"team-a", "team-b"} {
		if _, err := wkv.Put(ctx, ws, []byte(`{"name":"`+ws+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	audit := recordAudit(t, nc)
	var stdout syncBuffer
	start(t, service.Deps{Config: service.Config{BootstrapAPIKey: "0123456789abcdef-owner"}, NATS: nc, Stdout: &stdout, Now: clk.Now})

	// Create, validate, conflict.
	alice := must[rpc.User](t, nc, events.RPCAuthUserCreate, rpc.UserSpec{Actor: "admin", Username: "alice.smith",
		Email: "alice@example.com", Workspaces: []rpc.WorkspaceRole{{Name: "team-b", Role: "Viewer"}, {Name: "team-a", Role: "Editor"}}})
	if alice.Source != "admin" || len(alice.Workspaces) != 2 || alice.Workspaces[0].Name != "team-a" || !alice.CreatedAt.Equal(clk.Now()) {
		t.Errorf("created user = %+v", alice)
	}
	bad := map[string]struct {
		spec rpc.UserSpec
		code rpc.Code
	}{
		"upper-case name":   {rpc.UserSpec{Username: "Alice"}, rpc.Invalid},
		"empty name":        {rpc.UserSpec{}, rpc.Invalid},
		"bad email":         {rpc.UserSpec{Username: "bob", Email: "bob"}, rpc.Invalid},
		"bad role":          {rpc.UserSpec{Username: "bob", Workspaces: []rpc.WorkspaceRole{{Name: "team-a", Role: "admin"}}}, rpc.Invalid},
		"twice":             {rpc.UserSpec{Username: "bob", Workspaces: []rpc.WorkspaceRole{{Name: "team-a", Role: "Viewer"}, {Name: "team-a", Role: "Editor"}}}, rpc.Invalid},
		"unknown workspace": {rpc.UserSpec{Username: "bob", Workspaces: []rpc.WorkspaceRole{{Name: "nope", Role: "Viewer"}}}, rpc.NotFound},
		"taken":             {rpc.UserSpec{Username: "alice.smith"}, rpc.Conflict},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := call[rpc.User](t, nc, events.RPCAuthUserCreate, tc.spec)
			wantCode(t, err, tc.code, "")
		})
	}

	// Access tokens: secret once, hashed at rest, listed without it.
	tok := must[rpc.AccessTokenCreated](t, nc, events.RPCAuthTokenCreate, rpc.CreateAccessTokenRequest{Actor: "admin", Username: "alice.smith"})
	if !strings.HasPrefix(tok.Token, "egsu_") || len(tok.Token) != 5+43 || !tok.ExpiresAt.Equal(clk.Now().Add(30*24*time.Hour)) {
		t.Errorf("token = %+v", tok)
	}
	ukv, err := js.KeyValue(ctx, events.BucketUsers)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ukv.Get(ctx, "t."+tok.ID)
	if err != nil || strings.Contains(string(e.Value()), tok.Token) || !strings.Contains(string(e.Value()), `"hash"`) {
		t.Errorf("stored token record = %s (err %v): must hold the hash only", e.Value(), err)
	}
	list := must[rpc.AccessTokenList](t, nc, events.RPCAuthTokenList, rpc.UserRef{Username: "alice.smith"})
	if b, _ := json.Marshal(list); len(list.Tokens) != 1 || strings.Contains(string(b), tok.Token) || list.Tokens[0].Revoked {
		t.Errorf("token list = %s", b)
	}
	_, err = call[rpc.AccessTokenCreated](t, nc, events.RPCAuthTokenCreate, rpc.CreateAccessTokenRequest{Username: "alice.smith", Validity: "2026-11-26"})
	wantCode(t, err, rpc.Invalid, "")
	short := must[rpc.AccessTokenCreated](t, nc, events.RPCAuthTokenCreate, rpc.CreateAccessTokenRequest{Username: "alice.smith", Validity: "2026-11-28"})
	if !short.ExpiresAt.Equal(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("validity day token expires %v, want the end of that day", short.ExpiresAt)
	}

	// Logins with the access token: ok, then wrong, then revoked, then expired.
	l := must[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: tok.Token, Remote: "192.0.2.1"})
	if l.Method != rpc.LoginAccessToken || l.Origin != tok.ID || l.User.Username != "alice.smith" || len(l.User.Workspaces) != 2 {
		t.Errorf("login = %+v", l)
	}
	audit.waitSubject(t, "egs.auth.v1.login."+events.UserID("alice.smith"), ".succeeded")
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: tok.Token + "x"})
	wantCode(t, err, rpc.Unauthenticated, "Invalid access token")
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: "egsu_" + strings.Repeat("A", 43)})
	wantCode(t, err, rpc.Unauthenticated, "Invalid access token")
	must[rpc.Empty](t, nc, events.RPCAuthTokenRevoke, rpc.AccessTokenRef{Actor: "admin", Username: "alice.smith", ID: tok.ID})
	audit.waitSubject(t, "egs.auth.v1.usertoken."+tok.ID, ".revoked")
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: tok.Token})
	wantCode(t, err, rpc.Unauthenticated, "Access token revoked")
	must[rpc.Empty](t, nc, events.RPCAuthTokenRevoke, rpc.AccessTokenRef{Username: "alice.smith", ID: tok.ID}) // idempotent
	_, err = call[rpc.Empty](t, nc, events.RPCAuthTokenRevoke, rpc.AccessTokenRef{Username: "someone", ID: tok.ID})
	wantCode(t, err, rpc.NotFound, "")
	clk.Set(clk.Now().Add(48 * time.Hour))
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: short.Token})
	wantCode(t, err, rpc.Unauthenticated, "Access token expired")

	// The Owner API key logs in; an Editor key does not.
	l = must[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: "0123456789abcdef-owner"})
	if l.Method != rpc.LoginAPIToken || l.Caller == nil || l.Caller.Role != "Owner" || l.Caller.Workspace != "" || l.Origin != l.Caller.Subject {
		t.Errorf("owner key login = %+v", l)
	}
	ed := must[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, rpc.CreateKeyRequest{Name: "ed", Role: "Editor", Validity: "2027-01-01", Workspace: "team-a"})
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: ed.APIKey})
	wantCode(t, err, rpc.Unauthenticated, "Invalid access token")
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{})
	wantCode(t, err, rpc.BadRequest, "")

	// Direct login codes: single use, even when redeemed concurrently; expire.
	dl := must[rpc.DirectLoginCreated](t, nc, events.RPCAuthDirectCreate, rpc.DirectLoginRequest{Actor: "admin", Username: "alice.smith"})
	if !dl.ExpiresAt.Equal(clk.Now().Add(15 * time.Minute)) {
		t.Errorf("code expires %v, want in 15 minutes", dl.ExpiresAt)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, losses := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Code: dl.Code})
			mu.Lock()
			defer mu.Unlock()
			if err == nil && l.User.Username == "alice.smith" && l.Method == rpc.LoginDirect {
				wins++
			} else if rpc.CodeOf(err) == rpc.Unauthenticated {
				losses++
			}
		}()
	}
	wg.Wait()
	if wins != 1 || losses != 7 {
		t.Errorf("concurrent redemptions: %d won, %d refused; want 1 and 7", wins, losses)
	}
	dl = must[rpc.DirectLoginCreated](t, nc, events.RPCAuthDirectCreate, rpc.DirectLoginRequest{Username: "alice.smith", TTL: time.Minute})
	clk.Set(clk.Now().Add(2 * time.Minute))
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Code: dl.Code})
	wantCode(t, err, rpc.Unauthenticated, "Login link expired")
	_, err = call[rpc.DirectLoginCreated](t, nc, events.RPCAuthDirectCreate, rpc.DirectLoginRequest{Username: "nobody"})
	wantCode(t, err, rpc.NotFound, "")

	// Update and workspace deletion.
	u := must[rpc.User](t, nc, events.RPCAuthUserUpdate, rpc.UserSpec{Username: "alice.smith", Admin: true,
		Workspaces: []rpc.WorkspaceRole{{Name: "team-a", Role: "Owner"}}})
	if !u.Admin || len(u.Workspaces) != 1 || u.Email != "" {
		t.Errorf("updated = %+v", u)
	}
	audit.waitSubject(t, "egs.auth.v1.user."+events.UserID("alice.smith"), ".updated")

	// Delete: the event goes out, the tokens go away.
	tok2 := must[rpc.AccessTokenCreated](t, nc, events.RPCAuthTokenCreate, rpc.CreateAccessTokenRequest{Username: "alice.smith"})
	must[rpc.Empty](t, nc, events.RPCAuthUserDelete, rpc.UserRef{Actor: "admin", Username: "alice.smith"})
	audit.waitSubject(t, "egs.auth.v1.user."+events.UserID("alice.smith"), ".deleted")
	_, err = call[rpc.Login](t, nc, events.RPCAuthLogin, rpc.LoginRequest{Token: tok2.Token})
	wantCode(t, err, rpc.Unauthenticated, "Invalid access token")
	_, err = call[rpc.User](t, nc, events.RPCAuthUserGet, rpc.UserRef{Username: "alice.smith"})
	wantCode(t, err, rpc.NotFound, "")

	// No audit event carries a secret.
	all := audit.all()
	for _, secret := range []string{tok.Token, short.Token, tok2.Token, dl.Code, "0123456789abcdef-owner", ed.APIKey} {
		if strings.Contains(all, secret) {
			t.Errorf("an audit event holds a secret: %s", secret)
		}
	}
}

func TestWorkspaceDeletionRemovesItFromUsers(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	ctx := context.Background()
	wkv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces})
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range []string{"team-a", "team-b"} {
		if _, err := wkv.Put(ctx, ws, []byte(`{"name":"`+ws+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamWorkspace, Subjects: []string{events.SubjectWorkspaceAll}}); err != nil {
		t.Fatal(err)
	}
	start(t, service.Deps{Config: service.Config{BootstrapAPIKey: "0123456789abcdef-owner"}, NATS: nc})
	must[rpc.User](t, nc, events.RPCAuthUserCreate, rpc.UserSpec{Username: "bob",
		Workspaces: []rpc.WorkspaceRole{{Name: "team-a", Role: "Editor"}, {Name: "team-b", Role: "Viewer"}}})
	if err := wkv.Delete(ctx, "team-a"); err != nil {
		t.Fatal(err)
	}
	subject, _ := events.WorkspaceSubject("team-a", events.WorkspaceDeleted)
	body, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "ws-del-1", "source": "test", "type": "io.egs.workspace.deleted.v1",
		"subject": "team-a", "time": time.Now(), "datacontenttype": "application/json", "data": events.Workspace{Name: "team-a", At: time.Now()}})
	if _, err := js.Publish(ctx, subject, body); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := must[rpc.User](t, nc, events.RPCAuthUserGet, rpc.UserRef{Username: "bob"})
		if len(u.Workspaces) == 1 && u.Workspaces[0].Name == "team-b" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("user still has %+v after the workspace was deleted", u.Workspaces)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
