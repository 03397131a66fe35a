package kubetest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/testkit/kubetest"
)

func get(t *testing.T, c *kubetest.ControlPlane, path string, admin bool) (int, []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if admin {
		cert, err := tls.X509KeyPair(c.AdminCertPEM, c.AdminKeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(c.Host + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestControlPlane starts the real control plane and checks what the
// provisioner's tests rely on: the version, admin access through the
// kubeconfig's client certificate, anonymous requests refused by RBAC, and
// the API server restarting on the same port with its data.
func TestControlPlane(t *testing.T) {
	c := kubetest.Run(t, kubetest.Named("smoke"))
	code, body := get(t, c, "/version", true)
	var v struct{ GitVersion string }
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil || v.GitVersion != "v1.37.2" {
		t.Fatalf("/version = %d %s, want v1.37.2", code, body)
	}
	if code, body := get(t, c, "/api/v1/namespaces/kube-system", true); code != http.StatusOK {
		t.Fatalf("admin get kube-system = %d %s", code, body)
	}
	if code, _ := get(t, c, "/api/v1/namespaces", false); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("anonymous list namespaces = %d, want 401 or 403", code)
	}
	kc, err := os.ReadFile(c.Kubeconfig)
	if err != nil || !strings.Contains(string(kc), "server: "+c.Host) || !strings.Contains(string(kc), "current-context: smoke") {
		t.Fatalf("kubeconfig %s: %v\n%s", c.Kubeconfig, err, kc)
	}

	c.StopAPIServer()
	if err := c.StartAPIServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, c, "/api/v1/namespaces/kube-system", true); code != http.StatusOK {
		t.Fatalf("after restart: get kube-system = %d %s", code, body)
	}
}

func TestMissingBinaries(t *testing.T) {
	t.Setenv("EGS_KUBE_BIN_DIR", t.TempDir())
	_, err := kubetest.Start(context.Background(), kubetest.Options{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make kube-bins") {
		t.Fatalf("Start without binaries = %v, want an error naming make kube-bins", err)
	}
}
