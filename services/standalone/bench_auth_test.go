package standalone_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/token"

	"github.com/open-egs/egs/services/standalone"
)

// Load generator settings: like `wrk -c32` (32 keep-alive connections), for
// loadDuration per figure.
const (
	loadWorkers  = 32
	loadDuration = 5 * time.Second
)

// load sends requests made by mk from loadWorkers goroutines over one
// keep-alive transport for loadDuration and returns the rate of answers
// with status want, and how many answers were anything else.
func load(tb testing.TB, mk func() *http.Request, want int) (float64, int64) {
	tb.Helper()
	tr := &http.Transport{MaxIdleConns: loadWorkers, MaxIdleConnsPerHost: loadWorkers, MaxConnsPerHost: loadWorkers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var good, bad atomic.Int64
	deadline := time.Now().Add(loadDuration)
	start := time.Now()
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resp, err := client.Do(mk())
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == want {
					good.Add(1)
				} else if bad.Add(1) == 1 {
					tb.Logf("unexpected status %d from %s", resp.StatusCode, resp.Request.URL.Path)
				}
			}
		})
	}
	wg.Wait()
	return float64(good.Load()) / time.Since(start).Seconds(), bad.Load()
}

func form(method, u string, vals url.Values, user, pass string) func() *http.Request {
	body := vals.Encode()
	return func() *http.Request {
		r, _ := http.NewRequest(method, u, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		return r
	}
}

func jsonReq(method, u, body, bearer string) func() *http.Request {
	return func() *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r, _ := http.NewRequest(method, u, rd)
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		return r
	}
}

// BenchmarkAuth measures, in one run on one machine: API key → token
// exchanges/s, local JWT verifications/s, authenticated GET
// /api/v1/gpr/list requests/s and our client_credentials tokens/s and
// introspections/s through the standalone product's edge; then ory/hydra
// v2.3.0 (built from the module proxy in scripts/hydra/tools, in-memory
// SQLite) client_credentials tokens/s and introspections/s with the same
// load generator. The hydra part is skipped with a message if it cannot be
// built or started.
func BenchmarkAuth(b *testing.B) {
	const admin = "bench-admin-token-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan standalone.Info, 1)
	done := make(chan error, 1)
	cfg := standalone.Config{DataDir: b.TempDir(), NATSListen: "127.0.0.1:-1", HTTPAddr: "127.0.0.1:0",
		BootstrapAPIKey: bootstrapKey, AdminToken: admin}
	go func() {
		done <- standalone.Run(ctx, cfg, standalone.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready: func(i standalone.Info) { ready <- i },
			// The limiter stays in the path, with a budget the load cannot spend.
			Tune: func(s *standalone.Services) { s.API.RateLimit = 1 << 30 }})
	}()
	var info standalone.Info
	select {
	case info = <-ready:
	case err := <-done:
		b.Fatalf("standalone: %v", err)
	case <-time.After(2 * time.Minute):
		b.Fatal("standalone not ready")
	}
	defer func() { cancel(); <-done }()
	base := "http://" + info.HTTPAddr
	call := func(method, path, body, bearer string) map[string]any {
		resp, err := http.DefaultClient.Do(jsonReq(method, base+path, body, bearer)())
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var env map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&env)
		if resp.StatusCode/100 != 2 {
			b.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, env)
		}
		d, _ := env["data"].(map[string]any)
		return d
	}
	call("POST", "/api/v1/slice-workspace", `{"workspaceName":"bench","clusters":["worker-1"],"namespaces":["bench"],"username":"b","email":"b@example.com"}`, admin)
	tok := call("POST", "/api/v1/auth", `{"apiKey":"`+bootstrapKey+`"}`, "")["token"].(string)
	cl := call("POST", "/api/v1/admin/oauth-clients", `{"name":"bench","role":"Editor","workspace":"bench"}`, admin)
	clientID := cl["client"].(map[string]any)["clientId"].(string)
	secret := cl["clientSecret"].(string)

	b.ResetTimer()
	for range b.N {
		rate, bad := load(b, jsonReq("POST", base+"/api/v1/auth", `{"apiKey":"`+bootstrapKey+`"}`, ""), 200)
		report(b, "exchanges/s", rate, bad)

		rate = verifyRate(b, base, tok)
		report(b, "jwt-verifications/s", rate, 0)

		rate, bad = load(b, jsonReq("GET", base+"/api/v1/gpr/list?sliceName=bench", "", tok), 200)
		report(b, "gpr-list-GETs/s", rate, bad)

		ccVals := url.Values{"grant_type": {"client_credentials"}, "scope": {"egs"}}
		rate, bad = load(b, form("POST", base+"/oauth2/token", ccVals, clientID, secret), 200)
		report(b, "egs-cc-tokens/s", rate, bad)

		ccTok := clientCredentials(b, base+"/oauth2/token", clientID, secret)
		rate, bad = load(b, form("POST", base+"/oauth2/introspect", url.Values{"token": {ccTok}}, clientID, secret), 200)
		report(b, "egs-introspections/s", rate, bad)

		hydraFigures(b)
	}
	b.ReportMetric(0, "ns/op")
}

func report(b *testing.B, unit string, rate float64, bad int64) {
	b.Helper()
	if bad > 0 {
		b.Logf("%s: %d failed requests", unit, bad)
	}
	b.ReportMetric(rate, unit)
	b.Logf("%-24s %10.0f", unit, rate)
}

// verifyRate is how many access tokens per second the edge's verifier
// checks (signature, issuer, expiry) on every core, the JWKS fetched once.
func verifyRate(b *testing.B, base, tok string) float64 {
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		b.Fatal(err)
	}
	var set rpc.JWKS
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	var ks token.KeySet
	ks.SetJWKS(set)
	if _, err := ks.Verify(tok, time.Now()); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	deadline := time.Now().Add(loadDuration)
	start := time.Now()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := ks.Verify(tok, time.Now()); err == nil {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

func clientCredentials(b *testing.B, tokenURL, id, secret string) string {
	resp, err := http.DefaultClient.Do(form("POST", tokenURL, url.Values{"grant_type": {"client_credentials"}}, id, secret)())
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil || out.AccessToken == "" {
		b.Fatalf("client_credentials at %s: %d %s", tokenURL, resp.StatusCode, raw)
	}
	return out.AccessToken
}

const hydraVersion = "v2.3.0"

// buildHydra builds ory/hydra once per machine through scripts/hydra/tools
// (hydra's own pop replace, -tags sqlite for DSN=memory).
func buildHydra() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "egs", "hydra-"+hydraVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-tags", "sqlite", "-o", bin+".tmp", "github.com/ory/hydra/v2")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "scripts", "hydra", "tools")
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return bin, os.Rename(bin+".tmp", bin)
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "0"
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// hydraFigures measures hydra's client_credentials tokens/s and
// introspections/s with the same load generator.
func hydraFigures(b *testing.B) {
	bin, err := buildHydra()
	if err != nil {
		b.Logf("skipping the ory/hydra baseline: build failed: %v", err)
		return
	}
	pub, adm := freePort(), freePort()
	cmd := exec.Command(bin, "serve", "all", "--dev")
	cmd.Env = append(os.Environ(), "DSN=memory", "SERVE_PUBLIC_PORT="+pub, "SERVE_ADMIN_PORT="+adm,
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_ADMIN_HOST=127.0.0.1", "URLS_SELF_ISSUER=http://127.0.0.1:"+pub,
		"SECRETS_SYSTEM=bench-hydra-system-secret-0123456789", "LOG_LEVEL=error", "STRATEGIES_ACCESS_TOKEN=opaque")
	logf, _ := os.Create(filepath.Join(b.TempDir(), "hydra.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Logf("skipping the ory/hydra baseline: start: %v", err)
		return
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logf.Close() }()
	admin := "http://127.0.0.1:" + adm
	public := "http://127.0.0.1:" + pub
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(admin + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Logf("skipping the ory/hydra baseline: not ready within 60s (see %s)", logf.Name())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	body := `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","client_secret":"bench-hydra-client-secret-0123"}`
	resp, err := http.Post(admin+"/admin/clients", "application/json", strings.NewReader(body))
	if err != nil {
		b.Logf("skipping the ory/hydra baseline: create client: %v", err)
		return
	}
	var c struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	secret := "bench-hydra-client-secret-0123"
	rate, bad := load(b, form("POST", public+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, c.ClientID, secret), 200)
	report(b, "hydra-cc-tokens/s", rate, bad)
	tok := clientCredentials(b, public+"/oauth2/token", c.ClientID, secret)
	rate, bad = load(b, form("POST", admin+"/admin/oauth2/introspect", url.Values{"token": {tok}}, "", ""), 200)
	report(b, "hydra-introspections/s", rate, bad)
}
