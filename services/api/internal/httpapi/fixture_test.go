package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/libs/token"
)

const testAdminToken = "s3cret-admin-token"

// fixture is the edge on httptest against a real embedded NATS server, with
// test responders standing in for the services.
type fixture struct {
	t        *testing.T
	nc       *nats.Conn
	priv     ed25519.PrivateKey
	server   *Server
	http     *httptest.Server
	jwksHits atomic.Int32
	services atomic.Int32
}

func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	_, nc, _ := natstest.RunJetStream(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, nc: nc, priv: priv}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.serve(rpc.Method{Subject: events.RPCAuthJWKS, Handler: rpc.Handle(log, time.Second,
		func(context.Context, rpc.Empty) (rpc.JWKS, error) {
			f.jwksHits.Add(1)
			return rpc.JWKS{Keys: []rpc.JWK{token.JWK(priv.Public().(ed25519.PublicKey))}}, nil
		})})
	auth := NewAuthenticator(NATSJWKSFetcher(nc, time.Second), testAdminToken, time.Now, log)
	sub, err := auth.SubscribeRevocations(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	f.server = New(Options{NATS: nc, Log: log, Auth: auth, Prefix: prefix, RPCTimeout: 2 * time.Second,
		Now: func() time.Time { return time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC) }})
	f.http = httptest.NewServer(f.server)
	t.Cleanup(f.http.Close)
	return f
}

// serve registers test responders as one micro service.
func (f *fixture) serve(methods ...rpc.Method) {
	f.t.Helper()
	name := "test-" + string(rune('a'+f.services.Add(1)))
	svc, err := rpc.Serve(f.nc, name, "0.0.1", methods...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = svc.Stop() })
}

// method builds a responder for subject with a typed function.
func method[Req, Resp any](subject string, fn func(ctx context.Context, req Req) (Resp, error)) rpc.Method {
	return rpc.Method{Subject: subject, Handler: rpc.Handle(slog.New(slog.NewTextHandler(io.Discard, nil)), 2*time.Second, fn)}
}

// token signs an access token for key id sub.
func (f *fixture) token(sub, role, ws string, ttl time.Duration) string {
	f.t.Helper()
	return signToken(f.t, f.priv, sub, role, ws, ttl)
}

func signToken(t *testing.T, priv ed25519.PrivateKey, sub, role, ws string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	s, err := token.Sign(priv, token.Claims{Role: role, Workspace: ws, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: token.Issuer, Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// response is one HTTP answer with its decoded envelope.
type response struct {
	status int
	header http.Header
	body   string
	env    map[string]any
}

// data returns the envelope's data as an object.
func (r response) data() map[string]any {
	m, _ := r.env["data"].(map[string]any)
	return m
}

// do sends a request; body "" sends none (and no Content-Type).
func (f *fixture) do(method, path, bearerToken, body string) response {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.http.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept-Encoding", "identity")
	if bearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&r.env); err != nil {
		f.t.Fatalf("%s %s: body is not a JSON object (%v): %q", method, path, err, b)
	}
	checkEnvelope(f.t, method+" "+path, r)
	return r
}

// checkEnvelope asserts the rules every response follows (§1.4-§1.6).
func checkEnvelope(t *testing.T, what string, r response) {
	t.Helper()
	for k := range r.env {
		switch k {
		case "statusCode", "status", "message", "data", "error":
		default:
			t.Errorf("%s: envelope has extra key %q: %s", what, k, r.body)
		}
	}
	sc, ok := r.env["statusCode"].(json.Number)
	if !ok || sc.String() != strconv.Itoa(r.status) {
		t.Errorf("%s: statusCode %v (%T) does not equal HTTP %d", what, r.env["statusCode"], r.env["statusCode"], r.status)
	}
	if _, ok := r.env["status"].(string); !ok {
		t.Errorf("%s: status missing: %s", what, r.body)
	}
	if _, ok := r.env["message"].(string); !ok {
		t.Errorf("%s: message missing: %s", what, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if ce := r.header.Get("Content-Encoding"); ce != "" {
		t.Errorf("%s: Content-Encoding %q", what, ce)
	}
	if r.status == http.StatusOK {
		if r.env["status"] != "OK" || r.env["message"] != "Success" || r.env["error"] != nil {
			t.Errorf("%s: success envelope wrong: %s", what, r.body)
		}
		return
	}
	if r.status == http.StatusCreated {
		if r.env["status"] != "CREATED" || r.env["message"] != "Created" || r.env["error"] != nil {
			t.Errorf("%s: created envelope wrong: %s", what, r.body)
		}
		return
	}
	e, ok := r.env["error"].(map[string]any)
	if !ok && !strings.Contains(what, "/api/v1/auth") {
		t.Errorf("%s: error object missing: %s", what, r.body)
		return
	}
	if ok && (e["errorKey"] != r.env["status"] || e["message"] != r.env["message"] || e["data"] != nil) {
		t.Errorf("%s: error object does not mirror the envelope: %s", what, r.body)
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

func joinComma(s []string) string { return strings.Join(s, ",") }
