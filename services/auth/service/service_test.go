package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/libs/token"
	"github.com/open-egs/egs/services/auth/service"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// syncBuffer is a bytes.Buffer safe to write from Run's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs the service until stop is called (or the test ends) and checks
// that it returns nil.
func start(t *testing.T, d service.Deps) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	if d.Config.RPCTimeout == 0 {
		d.Config.RPCTimeout = 5 * time.Second
	}
	d.Ready = func() { close(ready) }
	go func() { done <- service.Run(ctx, d) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready after 10s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run() = %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func call[Resp any](t *testing.T, nc *nats.Conn, subject string, req any) (Resp, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rpc.Call[Resp](ctx, nc, subject, req)
}

func must[Resp any](t *testing.T, nc *nats.Conn, subject string, req any) Resp {
	t.Helper()
	r, err := call[Resp](t, nc, subject, req)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return r
}

func wantCode(t *testing.T, err error, code rpc.Code, msg string) {
	t.Helper()
	var e *rpc.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	if msg != "" && e.Message != msg {
		t.Errorf("message = %q, want %q", e.Message, msg)
	}
}

var bootstrapLine = regexp.MustCompile(`EGS bootstrap Owner API key \(shown once, keep it safe\): ([0-9a-f-]{36})\n`)

func bootstrapSecret(t *testing.T, out string) string {
	t.Helper()
	m := bootstrapLine.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("stdout = %q, want exactly one bootstrap key line", out)
	}
	return m[0][1]
}

func verify(t *testing.T, nc *nats.Conn, raw string, at time.Time) *token.Claims {
	t.Helper()
	var ks token.KeySet
	ks.SetJWKS(must[rpc.JWKS](t, nc, events.RPCAuthJWKS, rpc.Empty{}))
	c, err := ks.Verify(raw, at)
	if err != nil {
		t.Fatalf("verify token: %v", err)
	}
	return c
}

func TestAuthService(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	ctx := context.Background()
	// Play the workspace service: its bucket with one workspace.
	wkv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wkv.Put(ctx, "team-a", []byte(`{"name":"team-a"}`)); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	var stdout syncBuffer
	dir := t.TempDir()
	start(t, service.Deps{Config: service.Config{DataDir: dir}, NATS: nc, Stdout: &stdout, Now: clk.Now})

	// The bootstrap key: shown once, saved with mode 0600, an Owner token.
	boot := bootstrapSecret(t, stdout.String())
	path := filepath.Join(dir, service.BootstrapKeyFileName)
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != boot {
		t.Errorf("%s = %q (err %v), want the printed secret", path, b, err)
	}
	for _, name := range []string{service.BootstrapKeyFileName, service.SigningKeyFileName} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, err %v; want mode 0600", name, fi, err)
		}
	}
	x := must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: boot})
	c := verify(t, nc, x.Token, clk.Now())
	if c.Role != "Owner" || c.Workspace != "" || !strings.HasPrefix(c.Subject, "ak-") || c.ID == "" ||
		c.Issuer != token.Issuer || !c.ExpiresAt.Equal(clk.Now().Add(token.TTL)) || !x.ExpiresAt.Equal(c.ExpiresAt.Time) ||
		!c.IssuedAt.Equal(clk.Now()) {
		t.Errorf("bootstrap token claims = %+v, expiresAt %v", c, x.ExpiresAt)
	}

	// An Editor key of team-a.
	editor := must[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, rpc.CreateKeyRequest{Name: "ws-key", UserName: "u",
		Description: "d", Role: "Editor", Validity: "2026-12-31", Workspace: "team-a"})
	x = must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: editor.APIKey})
	if c := verify(t, nc, x.Token, clk.Now()); c.Role != "Editor" || c.Workspace != "team-a" || c.Subject != editor.KeyID {
		t.Errorf("editor token claims = %+v, want Editor of team-a, subject %s", c, editor.KeyID)
	}
	// Keys from two exchanges differ (random jti).
	y := must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: editor.APIKey})
	if y.Token == x.Token {
		t.Error("two exchanges gave the same token")
	}

	createFailures := map[string]struct {
		req  rpc.CreateKeyRequest
		code rpc.Code
	}{
		"bad role":           {req: rpc.CreateKeyRequest{Name: "k", Role: "Admin", Validity: "2026-12-31"}, code: rpc.Invalid},
		"editor without ws":  {req: rpc.CreateKeyRequest{Name: "k", Role: "Editor", Validity: "2026-12-31"}, code: rpc.Invalid},
		"unknown workspace":  {req: rpc.CreateKeyRequest{Name: "k", Role: "Viewer", Validity: "2026-12-31", Workspace: "nope"}, code: rpc.NotFound},
		"past validity":      {req: rpc.CreateKeyRequest{Name: "k", Role: "Owner", Validity: "2026-11-26"}, code: rpc.Invalid},
		"malformed validity": {req: rpc.CreateKeyRequest{Name: "k", Role: "Owner", Validity: "tomorrow"}, code: rpc.Invalid},
		"no name":            {req: rpc.CreateKeyRequest{Role: "Owner", Validity: "2026-12-31"}, code: rpc.Invalid},
		"duplicate name":     {req: rpc.CreateKeyRequest{Name: "ws-key", Role: "Owner", Validity: "2026-12-31"}, code: rpc.Conflict},
		"bootstrap name":     {req: rpc.CreateKeyRequest{Name: "bootstrap", Role: "Owner", Validity: "2026-12-31"}, code: rpc.Conflict},
	}
	for name, tc := range createFailures {
		t.Run("create "+name, func(t *testing.T) {
			_, err := call[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, tc.req)
			wantCode(t, err, tc.code, "")
		})
	}

	exchangeFailures := map[string]struct {
		key  string
		code rpc.Code
		msg  string
	}{
		"empty key":   {key: "", code: rpc.BadRequest},
		"unknown key": {key: "5067bd55-1aef-4c84-8987-3e966e917f07", code: rpc.Unauthenticated, msg: "Unauthenticated"},
		"a key id":    {key: editor.KeyID, code: rpc.Unauthenticated, msg: "Unauthenticated"},
	}
	for name, tc := range exchangeFailures {
		t.Run("exchange "+name, func(t *testing.T) {
			_, err := call[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: tc.key})
			wantCode(t, err, tc.code, tc.msg)
		})
	}

	// Expiry: a key valid until today works to the last second of the day (UTC).
	short := must[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, rpc.CreateKeyRequest{Name: "short", Role: "Viewer",
		Validity: "2026-11-27", Workspace: "team-a"})
	clk.Set(time.Date(2026, 11, 27, 23, 59, 59, 0, time.UTC))
	must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: short.APIKey})
	clk.Set(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC))
	_, err = call[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: short.APIKey})
	wantCode(t, err, rpc.KeyExpired, "Api Key has expired")

	// Lists: never a secret or a hash.
	secrets := []string{boot, editor.APIKey, short.APIKey}
	lists := map[string]struct {
		workspace string
		want      []rpc.KeyInfo
	}{
		"all": {want: []rpc.KeyInfo{
			{Name: "bootstrap", Role: "Owner", UserName: "admin", Validity: "2099-12-31", Description: "bootstrap Owner key"},
			{KeyID: short.KeyID, Name: "short", Role: "Viewer", Workspace: "team-a", Validity: "2026-11-27"},
			{KeyID: editor.KeyID, Name: "ws-key", Role: "Editor", UserName: "u", Workspace: "team-a", Validity: "2026-12-31", Description: "d"},
		}},
		"team-a": {workspace: "team-a", want: []rpc.KeyInfo{
			{KeyID: short.KeyID, Name: "short", Role: "Viewer", Workspace: "team-a", Validity: "2026-11-27"},
			{KeyID: editor.KeyID, Name: "ws-key", Role: "Editor", UserName: "u", Workspace: "team-a", Validity: "2026-12-31", Description: "d"},
		}},
	}
	for name, tc := range lists {
		t.Run("list "+name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			raw, err := nc.RequestWithContext(ctx, events.RPCAuthKeyList, mustJSON(t, rpc.ListKeysRequest{Workspace: tc.workspace}))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				for _, leak := range []string{s, hashOf(s)} {
					if strings.Contains(string(raw.Data), leak) {
						t.Errorf("list reply %s leaks %q", raw.Data, leak)
					}
				}
			}
			l := must[rpc.KeyList](t, nc, events.RPCAuthKeyList, rpc.ListKeysRequest{Workspace: tc.workspace})
			if tc.workspace == "" && len(l.Keys) == 3 {
				tc.want[0].KeyID = l.Keys[0].KeyID // the bootstrap id is not known here
			}
			if diff := cmp.Diff(tc.want, l.Keys); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	}
	_, err = call[rpc.KeyList](t, nc, events.RPCAuthKeyList, rpc.ListKeysRequest{Workspace: "nope"})
	wantCode(t, err, rpc.NotFound, "")

	// Delete by secret and by id; a deleted key no longer exchanges.
	must[rpc.Empty](t, nc, events.RPCAuthKeyDelete, rpc.DeleteKeyRequest{APIKey: editor.APIKey})
	must[rpc.Empty](t, nc, events.RPCAuthKeyDelete, rpc.DeleteKeyRequest{APIKey: short.KeyID})
	_, err = call[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: editor.APIKey})
	wantCode(t, err, rpc.Unauthenticated, "Unauthenticated")
	for _, ref := range []string{editor.APIKey, short.KeyID, "", "ak-00000000000000000000"} {
		_, err = call[rpc.Empty](t, nc, events.RPCAuthKeyDelete, rpc.DeleteKeyRequest{APIKey: ref})
		wantCode(t, err, rpc.NotFound, "")
	}
	// The name is free again.
	must[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, rpc.CreateKeyRequest{Name: "ws-key", Role: "Owner",
		Validity: "2026-12-31"})

	// The events: created and deleted, CloudEvents attributes, no secret or hash.
	type seen struct{ Subject, Type, CEType, Source, CESubject, Spec, Name string }
	var got []seen
	for _, m := range streamMsgs(t, js, events.StreamAuth) {
		for _, s := range secrets {
			if strings.Contains(string(m.Data()), s) || strings.Contains(string(m.Data()), hashOf(s)) {
				t.Errorf("event %s leaks a secret or hash", m.Subject())
			}
		}
		ev, err := bus.ParseEvent(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		var k events.APIKey
		if err := ev.Decode(&k); err != nil {
			t.Fatal(err)
		}
		if ev.ID != m.Headers().Get(jetstream.MsgIDHeader) || ev.Time.IsZero() || k.KeyID != ev.Subject {
			t.Errorf("event %s: id %q, msg id %q, time %v, key %q", m.Subject(), ev.ID,
				m.Headers().Get(jetstream.MsgIDHeader), ev.Time, k.KeyID)
		}
		got = append(got, seen{Subject: strings.Replace(m.Subject(), ev.Subject, "<id>", 1), Type: ev.Type,
			CEType: m.Headers().Get(bus.HeaderType), Source: ev.Source, CESubject: ev.Subject[:3], Spec: ev.SpecVersion, Name: k.Name})
	}
	ev := func(e, name string) seen {
		typ := "io.egs.apikey." + e + ".v1"
		return seen{Subject: "egs.auth.v1.apikey.<id>." + e, Type: typ, CEType: typ, Source: "egs/auth", CESubject: "ak-",
			Spec: "1.0", Name: name}
	}
	want := []seen{ev("created", "bootstrap"), ev("created", "ws-key"), ev("created", "short"),
		ev("deleted", "ws-key"), ev("deleted", "short"), ev("created", "ws-key")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestBootstrapOnce restarts the service on the same NATS storage: the
// generated bootstrap key is made and shown once; a configured secret
// replaces it, also once.
func TestBootstrapOnce(t *testing.T) {
	storeDir, dataDir := t.TempDir(), t.TempDir()
	runOnce := func(t *testing.T, cfg service.Config) (string, *nats.Conn) {
		srv := natstest.RunServerIn(t, storeDir)
		nc, _ := natstest.Connect(t, srv)
		var out syncBuffer
		stop := start(t, service.Deps{Config: cfg, NATS: nc, Stdout: &out})
		t.Cleanup(func() { stop(); nc.Close(); srv.Shutdown(); srv.WaitForShutdown() })
		return out.String(), nc
	}
	bootstrapKeys := func(t *testing.T, nc *nats.Conn) []string {
		var ids []string
		for _, k := range must[rpc.KeyList](t, nc, events.RPCAuthKeyList, rpc.ListKeysRequest{}).Keys {
			if k.Name == "bootstrap" {
				ids = append(ids, k.KeyID)
			}
		}
		return ids
	}
	var first string
	var firstIDs []string
	t.Run("first start generates", func(t *testing.T) {
		out, nc := runOnce(t, service.Config{DataDir: dataDir})
		first = bootstrapSecret(t, out)
		must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: first})
		firstIDs = bootstrapKeys(t, nc)
	})
	t.Run("restart keeps it", func(t *testing.T) {
		out, nc := runOnce(t, service.Config{DataDir: dataDir})
		if out != "" {
			t.Errorf("stdout on restart = %q, want nothing", out)
		}
		if ids := bootstrapKeys(t, nc); len(ids) != 1 || !cmp.Equal(ids, firstIDs) {
			t.Errorf("bootstrap keys = %v, want %v", ids, firstIDs)
		}
		must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: first})
		fi, err := os.Stat(filepath.Join(dataDir, service.BootstrapKeyFileName))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("bootstrap key file: %v, err %v; want mode 0600", fi, err)
		}
	})
	const configured = "0d6d5a3e-3d43-4c6e-9f7a-5b0b6a7a8c9d"
	for i := range 2 {
		t.Run("configured secret replaces it", func(t *testing.T) {
			out, nc := runOnce(t, service.Config{DataDir: dataDir, BootstrapAPIKey: configured})
			if out != "" {
				t.Errorf("stdout = %q, want nothing for a configured key", out)
			}
			if ids := bootstrapKeys(t, nc); len(ids) != 1 {
				t.Errorf("run %d: bootstrap keys = %v, want one", i+1, ids)
			}
			must[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: configured})
			_, err := call[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: first})
			wantCode(t, err, rpc.Unauthenticated, "")
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		cfg  service.Config
		want string
	}{
		"defaults":            {cfg: service.Config{RPCTimeout: time.Second}},
		"no timeout":          {cfg: service.Config{}, want: "rpc.timeout"},
		"short bootstrap key": {cfg: service.Config{RPCTimeout: time.Second, BootstrapAPIKey: "short"}, want: "bootstrap.api-key"},
		"both problems":       {cfg: service.Config{BootstrapAPIKey: "x y"}, want: "rpc.timeout must be positive\nbootstrap.api-key"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hashOf is the stored form of secret, computed independently of the service.
func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Msgs)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(n)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	if len(out) != n {
		t.Fatalf("fetched %d of %d messages", len(out), n)
	}
	return out
}

// TestWorkspaceDeletion: the keys of a deleted workspace stop exchanging at
// once (the bucket no longer has it) and are deleted, with their deleted
// events, when the workspace's deleted event arrives on the durable consumer
// auth-workspaces; redelivery deletes nothing more, and a late event spares
// the keys of a workspace made anew.
func TestWorkspaceDeletion(t *testing.T) {
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
	created := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clk := &clock{t: created}
	// Started before the workspace stream exists: the consumer waits for it.
	start(t, service.Deps{Config: service.Config{BootstrapAPIKey: "0d6d5a3e-3d43-4c6e-9f7a-5b0b6a7a8c9d"}, NATS: nc, Now: clk.Now})

	key := func(name, role, ws string) rpc.CreateKeyReply {
		return must[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, rpc.CreateKeyRequest{Name: name, UserName: "u",
			Role: role, Validity: "2026-12-31", Workspace: ws})
	}
	editorA, viewerA := key("editor-a", "Editor", "team-a"), key("viewer-a", "Viewer", "team-a")
	editorB, owner := key("editor-b", "Editor", "team-b"), key("owner", "Owner", "")
	exchange := func(k rpc.CreateKeyReply) error {
		_, err := call[rpc.ExchangeReply](t, nc, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: k.APIKey})
		return err
	}
	for _, k := range []rpc.CreateKeyReply{editorA, viewerA, editorB, owner} {
		if err := exchange(k); err != nil {
			t.Fatalf("exchange %s before the deletion: %v", k.KeyID, err)
		}
	}
	names := func() []string {
		var out []string
		for _, k := range must[rpc.KeyList](t, nc, events.RPCAuthKeyList, rpc.ListKeysRequest{}).Keys {
			out = append(out, k.Name)
		}
		return out
	}

	// The workspace service deletes team-a: first its bucket entry...
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamWorkspace, Subjects: []string{events.SubjectWorkspaceAll}}); err != nil {
		t.Fatal(err)
	}
	if err := wkv.Delete(ctx, "team-a"); err != nil {
		t.Fatal(err)
	}
	// ...and before its event is consumed, the keys no longer exchange and
	// no new key can be made for it.
	for _, k := range []rpc.CreateKeyReply{editorA, viewerA} {
		wantCode(t, exchange(k), rpc.Unauthenticated, "Unauthenticated")
	}
	_, err = call[rpc.CreateKeyReply](t, nc, events.RPCAuthKeyCreate, rpc.CreateKeyRequest{Name: "late", Role: "Viewer",
		Validity: "2026-12-31", Workspace: "team-a"})
	wantCode(t, err, rpc.NotFound, "")
	if diff := cmp.Diff([]string{"bootstrap", "editor-a", "editor-b", "owner", "viewer-a"}, names()); diff != "" {
		t.Fatalf("keys before the event (-want +got):\n%s", diff)
	}

	// Then its deleted event.
	deletedAt := created.Add(time.Hour)
	publishDeleted := func(id string) {
		t.Helper()
		subject, err := events.WorkspaceSubject("team-a", events.WorkspaceDeleted)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := bus.NewEvent(id, "egs/workspace", events.EventType("workspace", events.WorkspaceDeleted), "team-a",
			deletedAt, events.Workspace{Name: "team-a", At: deletedAt})
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.NewPublisher(js).Publish(ctx, subject, ev); err != nil {
			t.Fatal(err)
		}
	}
	// settled waits until the durable consumer has acked every message.
	settled := func(delivered uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := js.Consumer(ctx, events.StreamWorkspace, "auth-workspaces")
			if err == nil {
				info, err := c.Info(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if info.AckFloor.Stream == delivered && info.NumPending == 0 && info.NumAckPending == 0 {
					if info.Config.FilterSubject != events.SubjectWorkspaceDeleted {
						t.Errorf("consumer filter = %q", info.Config.FilterSubject)
					}
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer auth-workspaces has not acked stream sequence %d (err %v)", delivered, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publishDeleted("ws-team-a-deleted-1")
	settled(1)
	if diff := cmp.Diff([]string{"bootstrap", "editor-b", "owner"}, names()); diff != "" {
		t.Errorf("keys after the event (-want +got):\n%s", diff)
	}
	for _, k := range []rpc.CreateKeyReply{editorB, owner} {
		if err := exchange(k); err != nil {
			t.Errorf("exchange %s of another workspace: %v", k.KeyID, err)
		}
	}
	deletedEvents := func() map[string]int {
		got := map[string]int{}
		for _, m := range streamMsgs(t, js, events.StreamAuth) {
			if strings.HasSuffix(m.Subject(), ".deleted") {
				got[m.Subject()]++
			}
		}
		return got
	}
	subj := func(id string) string {
		s, err := events.APIKeySubject(id, "deleted")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := map[string]int{subj(editorA.KeyID): 1, subj(viewerA.KeyID): 1}
	if diff := cmp.Diff(want, deletedEvents()); diff != "" {
		t.Errorf("api key deleted events (-want +got):\n%s", diff)
	}

	// Redelivered (a second copy past the de-duplication): nothing more.
	publishDeleted("ws-team-a-deleted-1-again")
	settled(2)
	if diff := cmp.Diff(want, deletedEvents()); diff != "" {
		t.Errorf("api key deleted events after redelivery (-want +got):\n%s", diff)
	}

	// team-a is made anew with a new key; a late copy of the old deletion
	// spares it.
	if _, err := wkv.Put(ctx, "team-a", []byte(`{"name":"team-a"}`)); err != nil {
		t.Fatal(err)
	}
	clk.Set(deletedAt.Add(time.Minute))
	fresh := key("fresh-a", "Editor", "team-a")
	publishDeleted("ws-team-a-deleted-1-late")
	settled(3)
	if err := exchange(fresh); err != nil {
		t.Errorf("key of the new team-a after a late deletion event: %v", err)
	}
	if diff := cmp.Diff(want, deletedEvents()); diff != "" {
		t.Errorf("api key deleted events after a late event (-want +got):\n%s", diff)
	}
	if s, err := js.Stream(ctx, events.StreamDeadLetter); err != nil {
		t.Errorf("dead-letter stream: %v", err)
	} else if info, err := s.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("dead letters: %+v, err %v; want none", info, err)
	}
}
