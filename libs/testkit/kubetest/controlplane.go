// Package kubetest runs a real Kubernetes control plane on loopback: etcd,
// kube-apiserver (service-account token signing, RBAC, the admission plugins
// PodNodeSelector and PodTolerationRestriction besides the defaults) and
// kube-controller-manager (resource quotas, namespace deletion, garbage
// collection, default service accounts), built from source by
// scripts/kube-bins.sh and cached outside the clone. There is no kubelet and
// no scheduler: Node objects are created by hand and pods are bound by
// setting spec.nodeName.
//
// Tests call Start (one control plane per call, in t.TempDir, stopped at
// cleanup); scripts/kube-up.sh runs the same code through command kubeup.
// Missing binaries fail the test with the command that builds them: nothing
// is skipped and nothing falls back to a fake.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binaries of the control plane, looked up in BinDir.
const (
	BinEtcd              = "etcd"
	BinAPIServer         = "kube-apiserver"
	BinControllerManager = "kube-controller-manager"
)

// AdmissionPlugins are enabled on top of kube-apiserver's defaults (which
// include ResourceQuota, ServiceAccount and DefaultTolerationSeconds).
const AdmissionPlugins = "PodNodeSelector,PodTolerationRestriction"

// Controllers are the kube-controller-manager controllers run: the ones the
// product relies on a production cluster having (quota status, namespace
// finalisation, garbage collection, default service accounts for pods). The
// node lifecycle controller is left out, since no kubelet heartbeats, and so
// is clusterrole-aggregation: the provisioner must not rely on admin/edit/view.
const Controllers = "resourcequota,namespace,garbagecollector,serviceaccount,disruption"

// ServiceAccountIssuer is the issuer of the tokens the API server signs.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Options configure Start.
type Options struct {
	// Dir holds certificates, etcd data, kubeconfig and logs; it must exist.
	Dir string
	// BinDir holds the binaries; default: BinDir().
	BinDir string
	// Name is the cluster, user and context name of the kubeconfig; default "kube".
	Name string
	// APIServerArgs are appended to kube-apiserver's flags.
	APIServerArgs []string
	// NoControllerManager leaves kube-controller-manager out.
	NoControllerManager bool
}

// ControlPlane is a running etcd, kube-apiserver and kube-controller-manager.
type ControlPlane struct {
	// Name is the kubeconfig's cluster, user and context name.
	Name string
	// Host is the API server's URL, https://127.0.0.1:<port>.
	Host string
	// CAPEM signs the API server's serving certificate and the admin's
	// client certificate.
	CAPEM []byte
	// AdminCertPEM and AdminKeyPEM are a client certificate in system:masters.
	AdminCertPEM, AdminKeyPEM []byte
	// Kubeconfig is the path of the admin kubeconfig.
	Kubeconfig string
	// Dir is the state directory (Options.Dir).
	Dir string

	opts      Options
	bins      string
	etcdURL   string
	apiPort   int
	mu        sync.Mutex
	etcd, api *proc
	kcm       *proc
}

// Start runs a control plane in opts.Dir and returns once the API server
// answers /readyz (its RBAC bootstrap roles are in place), at most 90 s.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.Name == "" {
		opts.Name = "kube"
	}
	bins := opts.BinDir
	if bins == "" {
		var err error
		if bins, err = BinDir(); err != nil {
			return nil, err
		}
	}
	if err := checkBinaries(bins, !opts.NoControllerManager); err != nil {
		return nil, err
	}
	pki, err := writePKI(opts.Dir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c := &ControlPlane{
		Name: opts.Name, Host: "https://127.0.0.1:" + strconv.Itoa(ports[2]),
		CAPEM: pki.caPEM, AdminCertPEM: pki.adminCertPEM, AdminKeyPEM: pki.adminKeyPEM,
		Kubeconfig: filepath.Join(opts.Dir, "admin.kubeconfig"), Dir: opts.Dir,
		opts: opts, bins: bins, etcdURL: "http://127.0.0.1:" + strconv.Itoa(ports[0]), apiPort: ports[2],
	}
	if err := os.WriteFile(c.Kubeconfig, c.KubeconfigYAML(), 0o600); err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	if c.etcd, err = c.startEtcd(ports[1]); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, c.etcd, 30*time.Second, c.etcdURL+"/health", nil); err != nil {
		c.Stop()
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if err := c.StartAPIServer(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	if !opts.NoControllerManager {
		if c.kcm, err = c.startControllerManager(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *ControlPlane) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *ControlPlane) startEtcd(peerPort int) (*proc, error) {
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	return startProc(filepath.Join(c.bins, BinEtcd), c.path("etcd.log"),
		"--name=default", "--data-dir="+c.path("etcd"),
		"--listen-client-urls="+c.etcdURL, "--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer, "--unsafe-no-fsync", "--log-level=warn")
}

// StartAPIServer (re)starts kube-apiserver on its port and waits until it is
// ready; it is a no-op while the API server runs. Tests use StopAPIServer and
// StartAPIServer to make the cluster unreachable for a while.
func (c *ControlPlane) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return nil
	}
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--tls-cert-file=" + c.path(fileServingCert), "--tls-private-key-file=" + c.path(fileServingKey),
		"--client-ca-file=" + c.path(fileCA),
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + c.path(fileSAPub),
		"--service-account-signing-key-file=" + c.path(fileSAKey),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=" + AdmissionPlugins,
		// No kubelet reports Ready and no node lifecycle controller lifts the
		// not-ready taint this plugin puts on every new Node: leave it out,
		// so hand-made Nodes are schedulable as their conditions say.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--allow-privileged=false",
		"--profiling=false",
		"--endpoint-reconciler-type=none",
	}
	args = append(args, c.opts.APIServerArgs...)
	p, err := startProc(filepath.Join(c.bins, BinAPIServer), c.path("kube-apiserver.log"), args...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, p, 90*time.Second, c.Host+"/readyz", c.adminTLS()); err != nil {
		p.stop()
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	c.api = p
	return nil
}

// StopAPIServer stops kube-apiserver; etcd and the data stay.
func (c *ControlPlane) StopAPIServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		c.api.stop()
		c.api = nil
	}
}

func (c *ControlPlane) startControllerManager() (*proc, error) {
	return startProc(filepath.Join(c.bins, BinControllerManager), c.path("kube-controller-manager.log"),
		"--kubeconfig="+c.Kubeconfig, "--controllers="+Controllers,
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		"--concurrent-namespace-syncs=2", "--concurrent-resource-quota-syncs=2")
}

// Stop stops every process, the controller manager first; it is safe to call
// more than once.
func (c *ControlPlane) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range []**proc{&c.kcm, &c.api, &c.etcd} {
		if *p != nil {
			(*p).stop()
			*p = nil
		}
	}
}

// KubeconfigYAML is the admin kubeconfig (certificates inline).
func (c *ControlPlane) KubeconfigYAML() []byte {
	return Kubeconfig(c.Name, c.Host, c.CAPEM, c.AdminCertPEM, c.AdminKeyPEM)
}

// Kubeconfig renders a kubeconfig of one cluster, user and context, all
// called name, authenticating with a client certificate.
func Kubeconfig(name, host string, caPEM, certPEM, keyPEM []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[1]s
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s
current-context: %[1]s
`, name, host, b64(caPEM), b64(certPEM), b64(keyPEM))
	return b.Bytes()
}

func (c *ControlPlane) adminTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	cert, err := tls.X509KeyPair(c.AdminCertPEM, c.AdminKeyPEM)
	if err != nil {
		panic("kubetest: admin key pair: " + err.Error()) // generated just before: a defect
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// proc is one child process whose output goes to a log file.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(bin, logPath string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", filepath.Base(bin), err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// The children die with the process that started them, even if it is
	// killed: no control plane outlives its test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM and, after 10 s, SIGKILL; it returns once the process exited.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitHTTP polls url until it answers 200, the process exits, or the timeout.
func waitHTTP(ctx context.Context, p *proc, timeout time.Duration, url string, tlsCfg *tls.Config) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited at start (%v); log %s:\n%s", p.err, p.log, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s (last: %s); log %s:\n%s", timeout, last, p.log, p.tail())
		}
	}
}

// freePorts finds n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// ErrNoBinaries is wrapped by the error of Start and BinDir when the control
// plane has not been built.
var ErrNoBinaries = errors.New("control plane binaries not built: run `make kube-bins` (scripts/kube-bins.sh)")

func checkBinaries(dir string, kcm bool) error {
	names := []string{BinEtcd, BinAPIServer}
	if kcm {
		names = append(names, BinControllerManager)
	}
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s missing in %s: %w", n, dir, ErrNoBinaries)
		}
	}
	return nil
}
