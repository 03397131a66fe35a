package service_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/config"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/libs/token"

	"github.com/open-egs/egs/services/api/service"
)

func defaultConfig(t *testing.T, args []string, env map[string]string) (service.Config, error) {
	t.Helper()
	var c service.Config
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := config.Parse(fs, "EGS_API", args, func(k string) string { return env[k] }); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfig(t *testing.T) {
	tests := map[string]struct {
		args    []string
		env     map[string]string
		check   func(service.Config) bool
		wantErr string
	}{
		"defaults": {check: func(c service.Config) bool {
			return c.HTTPAddr == ":8080" && c.HTTPPrefix == "" && c.AdminToken == "" && c.RPCTimeout < c.WriteTimeout
		}},
		"env fallback": {env: map[string]string{"EGS_API_ADMIN_TOKEN": "t0k", "EGS_API_HTTP_PREFIX": "/egs"},
			check: func(c service.Config) bool { return c.AdminToken == "t0k" && c.HTTPPrefix == "/egs" }},
		"flag wins": {args: []string{"-http.addr=127.0.0.1:9090"}, env: map[string]string{"EGS_API_HTTP_ADDR": ":1"},
			check: func(c service.Config) bool { return c.HTTPAddr == "127.0.0.1:9090" }},
		"every problem at once": {args: []string{"-http.addr=", "-rpc.timeout=0s", "-http.max-body-bytes=0"},
			wantErr: "http.addr is required\nrpc.timeout must be positive"},
		"rpc slower than write": {args: []string{"-rpc.timeout=2m"}, wantErr: "rpc.timeout must be shorter than http.write-timeout"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := defaultConfig(t, tc.args, tc.env)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, line := range strings.Split(tc.wantErr, "\n") {
					if !strings.Contains(err.Error(), line) {
						t.Errorf("error %q lacks %q", err, line)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestConfigLogValueRedactsAdminToken(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("x", "config", service.Config{AdminToken: "very-secret"})
	if strings.Contains(b.String(), "very-secret") {
		t.Errorf("admin token logged: %s", b.String())
	}
}

// TestRun is the component test: Run against a real embedded NATS server
// with stand-in auth and scheduler responders, driven over HTTP.
func TestRun(t *testing.T) {
	_, nc, _ := natstest.RunJetStream(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []rpc.ListGPRsRequest
	)
	svc, err := rpc.Serve(nc, "stand-in", "0.0.1",
		rpc.Method{Subject: events.RPCAuthJWKS, Handler: rpc.Handle(log, time.Second, func(context.Context, rpc.Empty) (rpc.JWKS, error) {
			return rpc.JWKS{Keys: []rpc.JWK{token.JWK(priv.Public().(ed25519.PublicKey))}}, nil
		})},
		rpc.Method{Subject: events.RPCAuthExchange, Handler: rpc.Handle(log, time.Second, func(_ context.Context, req rpc.ExchangeRequest) (rpc.ExchangeReply, error) {
			if req.APIKey != "5067bd55-1aef-4c84-8987-3e966e917f07" {
				return rpc.ExchangeReply{}, rpc.Errorf(rpc.Unauthenticated, "unknown key")
			}
			now := time.Now()
			tok, err := token.Sign(priv, token.Claims{Role: "Editor", Workspace: "ws", RegisteredClaims: jwt.RegisteredClaims{
				Issuer: token.Issuer, Subject: "kid1", ExpiresAt: jwt.NewNumericDate(now.Add(token.TTL))}})
			return rpc.ExchangeReply{Token: tok, ExpiresAt: now.Add(token.TTL)}, err
		})},
		rpc.Method{Subject: events.RPCGPRList, Handler: rpc.Handle(log, time.Second, func(_ context.Context, req rpc.ListGPRsRequest) (rpc.GPRList, error) {
			mu.Lock()
			seen = append(seen, req)
			mu.Unlock()
			return rpc.GPRList{Items: []rpc.GPR{{GPRID: "gpr-1", Workspace: req.Workspace, ExitDuration: time.Hour}}}, nil
		})},
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := defaultConfig(t, []string{"-http.prefix=/egs", "-admin.token=adm"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: log, Listener: ln, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run not ready")
	}
	base := "http://" + ln.Addr().String() + "/egs/"

	send := func(method, path, bearer, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp.StatusCode, env
	}

	if code, _ := send("GET", "/readyz", "", ""); code != 200 {
		t.Fatalf("readyz = %d", code)
	}
	code, env := send("POST", "/api/v1/auth", "", `{"apiKey":"5067bd55-1aef-4c84-8987-3e966e917f07"}`)
	if code != 200 {
		t.Fatalf("auth = %d %v", code, env)
	}
	tok := env["data"].(map[string]any)["token"].(string)
	code, env = send("GET", "/api/v1/gpr/list?sliceName=ws", tok, "")
	if code != 200 {
		t.Fatalf("gpr list = %d %v", code, env)
	}
	items := env["data"].(map[string]any)["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["exitDuration"] != "1h0m0s" {
		t.Errorf("items = %v", items)
	}
	mu.Lock()
	if len(seen) != 1 || !cmp.Equal(seen[0].Caller, rpc.Caller{Subject: "kid1", Role: "Editor", Workspace: "ws"}) {
		t.Errorf("scheduler saw %+v", seen)
	}
	mu.Unlock()
	if code, _ := send("GET", "/api/v1/gpr/list?sliceName=other", tok, ""); code != 403 {
		t.Errorf("other workspace = %d, want 403", code)
	}
	if code, _ := send("GET", "/api/v1/slice-workspace/list", "adm", ""); code != 503 {
		t.Errorf("admin token without workspace service = %d, want 503", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if nc.IsClosed() {
		t.Error("Run closed the caller's NATS connection")
	}
}

// TestRevocationCatchUp: an edge started after an API key was deleted refuses
// that key's unexpired tokens, read from the auth stream's history, and
// still follows live deletions.
func TestRevocationCatchUp(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := rpc.Serve(nc, "stand-in", "0.0.1",
		rpc.Method{Subject: events.RPCAuthJWKS, Handler: rpc.Handle(log, time.Second, func(context.Context, rpc.Empty) (rpc.JWKS, error) {
			return rpc.JWKS{Keys: []rpc.JWK{token.JWK(priv.Public().(ed25519.PublicKey))}}, nil
		})},
		rpc.Method{Subject: events.RPCWorkspaceList, Handler: rpc.Handle(log, time.Second, func(context.Context, rpc.ListWorkspacesRequest) (rpc.WorkspaceList, error) {
			return rpc.WorkspaceList{}, nil
		})},
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	sign := func(sub string) string {
		now := time.Now()
		tok, err := token.Sign(priv, token.Claims{Role: "Owner", RegisteredClaims: jwt.RegisteredClaims{
			Issuer: token.Issuer, Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(token.TTL))}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	gone, live, kept := sign("ak-gone"), sign("ak-live"), sign("ak-kept")

	// Play the auth service: its stream, a key created and then deleted
	// before any edge runs.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamAuth, Subjects: []string{events.SubjectAuthAll}}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js)
	publish := func(keyID, name string) {
		t.Helper()
		subject, err := events.APIKeySubject(keyID, name)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := bus.NewEvent("", "egs/auth", events.EventType("apikey", name), keyID, time.Now(), events.APIKey{KeyID: keyID})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, subject, ev); err != nil {
			t.Fatal(err)
		}
	}
	publish("ak-gone", "created")
	publish("ak-kept", "created")
	publish("ak-gone", "deleted")
	publish("ak-live", "created")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := defaultConfig(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- service.Run(rctx, service.Deps{Config: cfg, NATS: nc, Log: log, Listener: ln, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run not ready")
	}
	status := func(tok string) int {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+ln.Addr().String()+"/api/v1/slice-workspace/list", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Ready means caught up: no waiting here.
	if code := status(gone); code != http.StatusUnauthorized {
		t.Errorf("token of a key deleted before the edge started = %d, want 401", code)
	}
	if code := status(kept); code != http.StatusOK {
		t.Errorf("token of a live key = %d, want 200", code)
	}
	if code := status(live); code != http.StatusOK {
		t.Fatalf("token of ak-live before its deletion = %d, want 200", code)
	}
	publish("ak-live", "deleted")
	deadline := time.Now().Add(5 * time.Second)
	for status(live) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("a deletion after start-up is not followed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := status(kept); code != http.StatusOK {
		t.Errorf("token of a live key = %d, want 200", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
