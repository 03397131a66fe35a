package standalone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"

	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/libs/testkit/redistest"

	api "github.com/open-egs/egs/services/api/service"
	auth "github.com/open-egs/egs/services/auth/service"
	"github.com/open-egs/egs/services/standalone"
	workspace "github.com/open-egs/egs/services/workspace/service"
)

const stackAdmin = "stack-admin-token-0123456789"

// authStack is the part of the product that portal logins need, each
// service on its own NATS connection as in production: the workspace
// service, auth, and any number of edges, against one embedded NATS server
// and one real redis-server.
type authStack struct {
	t       *testing.T
	srv     *server.Server
	redis   *redistest.Server
	dataDir string
	svcs    map[string]*svcRun
	edges   []string // base URLs, by index
	edgeRun []*svcRun
	// The first edge's listener exists before auth starts, so that the
	// issuer knows its public URL; the issuer's handler is handed from auth
	// to the edges as in the standalone process.
	firstLn net.Listener
	issuer  issuerHolder
	// idpConfig is auth's upstream providers file ("" none).
	idpConfig string
	// tuneEdge adjusts each edge's configuration (nil: defaults).
	tuneEdge func(*api.Config)
}

const stackEdgeSecret = "stack-edge-secret-0123456789"

type issuerHolder struct{ h atomic.Pointer[http.Handler] }

func (s *issuerHolder) set(h http.Handler) { s.h.Store(&h) }

func (s *issuerHolder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "no issuer", http.StatusServiceUnavailable)
}

// issuerURL is the public URL of the issuer: the first edge's.
func (st *authStack) issuerURL() string { return "http://" + st.firstLn.Addr().String() }

type svcRun struct {
	cancel context.CancelFunc
	done   chan error
}

func (r *svcRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("service stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("service did not stop within 20s")
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newAuthStack(t *testing.T, prepare ...func(*authStack)) *authStack {
	t.Helper()
	st := &authStack{t: t, srv: natstest.RunServer(t), redis: redistest.Start(t), dataDir: t.TempDir(),
		svcs: map[string]*svcRun{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.firstLn = ln
	for _, p := range prepare {
		p(st)
	}
	// Play the provisioner: one registered cluster, c1.
	_, js := natstest.Connect(t, st.srv)
	ckv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: events.BucketClusters})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ckv.Put(context.Background(), "c1", []byte(`{"name":"c1","simulated":true}`)); err != nil {
		t.Fatal(err)
	}
	st.startService("workspace", func(ctx context.Context, nc *nats.Conn, ready func()) error {
		return workspace.Run(ctx, workspace.Deps{Config: standalone.DefaultServices().Workspace, NATS: nc, Ready: ready})
	})
	st.startAuth()
	t.Cleanup(func() {
		for i := len(st.edgeRun) - 1; i >= 0; i-- {
			if st.edgeRun[i] != nil {
				st.edgeRun[i].stop(t)
			}
		}
		for _, name := range []string{"auth", "workspace"} {
			if r := st.svcs[name]; r != nil {
				r.stop(t)
			}
		}
	})
	return st
}

// startService runs fn on a fresh connection and waits until it is ready.
func (st *authStack) startService(name string, fn func(ctx context.Context, nc *nats.Conn, ready func()) error) *svcRun {
	st.t.Helper()
	nc, _ := natstest.Connect(st.t, st.srv)
	ctx, cancel := context.WithCancel(context.Background())
	r := &svcRun{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	var once sync.Once
	go func() { r.done <- fn(ctx, nc, func() { once.Do(func() { close(ready) }) }) }()
	select {
	case <-ready:
	case err := <-r.done:
		st.t.Fatalf("%s stopped before ready: %v", name, err)
	case <-time.After(30 * time.Second):
		st.t.Fatalf("%s not ready within 30s", name)
	}
	st.svcs[name] = r
	return r
}

func (st *authStack) startAuth() {
	st.startService("auth", func(ctx context.Context, nc *nats.Conn, ready func()) error {
		cfg := standalone.DefaultServices().Auth
		cfg.DataDir, cfg.BootstrapAPIKey = st.dataDir, bootstrapKey
		cfg.RedisURL, cfg.IssuerURL, cfg.EdgeSecret = st.redis.URL(), st.issuerURL(), stackEdgeSecret
		cfg.IdPConfig = st.idpConfig
		return auth.Run(ctx, auth.Deps{Config: cfg, NATS: nc, Ready: ready, Log: quietLog(), Issuer: st.issuer.set})
	})
}

func (st *authStack) restartAuth() {
	st.svcs["auth"].stop(st.t)
	st.startAuth()
}

// addEdge starts one more edge on a fresh port and returns its index.
func (st *authStack) addEdge() int {
	st.t.Helper()
	ln := st.firstLn
	if len(st.edges) > 0 {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			st.t.Fatal(err)
		}
	}
	url := "http://" + ln.Addr().String()
	r := st.startService("api", func(ctx context.Context, nc *nats.Conn, ready func()) error {
		cfg := standalone.DefaultServices().API
		cfg.AdminToken, cfg.RedisURL, cfg.OAuthEdgeSecret = stackAdmin, st.redis.URL(), stackEdgeSecret
		if st.tuneEdge != nil {
			st.tuneEdge(&cfg)
		}
		return api.Run(ctx, api.Deps{Config: cfg, NATS: nc, Log: quietLog(), Ready: ready, Listener: ln, OAuth: &st.issuer})
	})
	st.edges = append(st.edges, url)
	st.edgeRun = append(st.edgeRun, r)
	return len(st.edges) - 1
}

// restartEdge stops edge i and starts a new one in its place (new port).
func (st *authStack) restartEdge(i int) {
	st.edgeRun[i].stop(st.t)
	st.edgeRun[i] = nil
	j := st.addEdge()
	st.edges[i], st.edgeRun[i] = st.edges[j], st.edgeRun[j]
	st.edges, st.edgeRun = st.edges[:j], st.edgeRun[:j]
}

// sclient is an HTTP client with a cookie jar that does not follow redirects.
type sclient struct {
	t    *testing.T
	c    *http.Client
	csrf string
}

func newSClient(t *testing.T) *sclient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &sclient{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// sanswer is one HTTP response, its envelope decoded when it is JSON.
type sanswer struct {
	status int
	header http.Header
	env    map[string]any
	body   string
}

func (a sanswer) data() map[string]any { m, _ := a.env["data"].(map[string]any); return m }
func (a sanswer) list() []any          { l, _ := a.env["data"].([]any); return l }
func (a sanswer) msg() string          { s, _ := a.env["message"].(string); return s }

// do sends a request; hdr adds headers ("Authorization" etc.). A body that
// is not a string is encoded as JSON.
func (b *sclient) do(method, url string, body any, hdr ...string) sanswer {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			bs, err := json.Marshal(body)
			if err != nil {
				b.t.Fatal(err)
			}
			raw = string(bs)
		}
		rd = strings.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := sanswer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(bytes.NewReader(raw))
		_ = dec.Decode(&a.env)
	}
	return a
}

// write sends a state-changing request with the session's CSRF token.
func (b *sclient) write(method, url string, body any) sanswer {
	b.t.Helper()
	return b.do(method, url, body, "X-CSRF-Token", b.csrf)
}

// login posts a token to the portal login and keeps the CSRF token.
func (b *sclient) login(edge, tok string) sanswer {
	b.t.Helper()
	a := b.do("POST", edge+"/api/v1/session/login", map[string]string{"token": tok})
	if a.status == 200 {
		b.csrf, _ = a.data()["csrfToken"].(string)
	}
	return a
}

// session reads GET /api/v1/session and keeps the CSRF token.
func (b *sclient) session(edge string) sanswer {
	b.t.Helper()
	a := b.do("GET", edge+"/api/v1/session", nil)
	if a.status == 200 {
		b.csrf, _ = a.data()["csrfToken"].(string)
	}
	return a
}

// asAdmin sends a request with the admin token.
func asAdmin(t *testing.T, method, url string, body any) sanswer {
	t.Helper()
	return newSClient(t).do(method, url, body, "Authorization", "Bearer "+stackAdmin)
}

// mustStatus fails the test unless a has status want.
func mustStatus(t *testing.T, what string, a sanswer, want int) sanswer {
	t.Helper()
	if a.status != want {
		t.Fatalf("%s: status %d, want %d: %s", what, a.status, want, a.body)
	}
	return a
}

// workspaceNames lists the names in a session's or a list's workspaces.
func workspaceNames(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, w := range l {
		m, _ := w.(map[string]any)
		name, _ := m["name"].(string)
		if name == "" {
			name, _ = m["workspaceName"].(string)
		}
		if role, ok := m["role"].(string); ok {
			name += ":" + role
		}
		out = append(out, name)
	}
	return out
}

// within retries cond every 20 ms for at most within.
func within(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
