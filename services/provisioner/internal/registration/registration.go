// Package registration lets admins register clusters at run time: the
// kubeconfig is sealed with AES-256-GCM (key in a file of the provisioner's,
// the cluster name as associated data) and kept in the bucket
// EGS_CLUSTER_CREDENTIALS; every provisioner replica follows that bucket and
// starts or stops serving the cluster without a restart. It also watches the
// health of every served real cluster, probing /readyz with backoff while it
// fails, and publishes each cluster (registered or configured, healthy or
// not) in EGS_CLUSTERS.
package registration

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/provisioner/internal/clusters"
)

// Sealer encrypts credentials at rest.
type Sealer struct{ aead cipher.AEAD }

// LoadOrCreateKey reads the base64 AES-256 key at path, creating the file
// (mode 0600) with a random key when it does not exist.
func LoadOrCreateKey(path string) (*Sealer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("credentials key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("credentials key: %w", err)
		}
		b = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write credentials key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read credentials key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("credentials key %s: want 32 bytes in base64", path)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credentials key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credentials key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain for cluster name: nonce || ciphertext.
func (s *Sealer) Seal(name string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("registration: no randomness: " + err.Error())
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(name))
}

// Open decrypts what Seal sealed for the same name.
func (s *Sealer) Open(name string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed credentials too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("open credentials of %s: %w", name, err)
	}
	return plain, nil
}

// record is the value of a credentials key.
type record struct {
	Sealed []byte    `json:"sealed"` // the kubeconfig, sealed
	Server string    `json:"server,omitempty"`
	At     time.Time `json:"at"`
}

// Served is what the registry's users need to know of a cluster change.
type Served interface {
	AddCluster(name string, c *clusters.Cluster) error
	RemoveCluster(ctx context.Context, name string) error
}

// Manager runs registrations and health checks. Create it with New.
type Manager struct {
	creds    jetstream.KeyValue // events.BucketClusterCredentials
	list     jetstream.KeyValue // events.BucketClusters
	sealer   *Sealer            // nil: registration disabled
	reg      *clusters.Registry
	served   Served
	log      *slog.Logger
	now      func() time.Time
	static   map[string]bool // configured clusters, never unregistered
	interval time.Duration   // health probe period while healthy

	mu       sync.Mutex
	loaded   map[string]uint64 // registered cluster → credentials revision applied
	state    map[string]events.Cluster
	monitors map[string]context.CancelFunc
}

// Config is what New needs.
type Config struct {
	Credentials, Clusters jetstream.KeyValue
	Sealer                *Sealer // nil disables registration
	Registry              *clusters.Registry
	Served                Served
	Log                   *slog.Logger
	Now                   func() time.Time
	HealthInterval        time.Duration // default 10 s
}

// New returns a Manager; the registry's clusters at this point are the
// configured (static) ones.
func New(c Config) *Manager {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 10 * time.Second
	}
	static := map[string]bool{}
	for _, name := range c.Registry.Names() {
		static[name] = true
	}
	return &Manager{creds: c.Credentials, list: c.Clusters, sealer: c.Sealer, reg: c.Registry, served: c.Served,
		log: c.Log, now: c.Now, static: static, interval: c.HealthInterval,
		loaded: map[string]uint64{}, state: map[string]events.Cluster{}, monitors: map[string]context.CancelFunc{}}
}

// Load puts the registered clusters into the registry (before the inventory
// starts, so their nodes are not dropped and re-added) and drops from
// EGS_CLUSTERS the clusters that are neither served nor registered.
func (m *Manager) Load(ctx context.Context) error {
	entries, err := bus.ReadAll(ctx, m.creds, "")
	if err != nil {
		return err
	}
	registered := map[string]bool{}
	for _, e := range entries {
		if m.static[e.Key()] {
			continue
		}
		registered[e.Key()] = true
		c, err := m.open(e)
		if err != nil {
			m.log.Error("registered cluster cannot be served", logkey.Cluster, e.Key(), logkey.Err, err)
			continue
		}
		m.reg.Put(c)
		m.loaded[e.Key()] = e.Revision()
	}
	for _, c := range m.reg.List() {
		if err := m.publish(ctx, m.entry(c.Name, c.Simulated, "")); err != nil {
			return err
		}
	}
	keys, err := m.list.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("list clusters: %w", err)
	}
	// An entry goes when its cluster is neither served nor registered: a
	// registration this replica cannot open (another credentials key) may be
	// served by a replica that can.
	for _, k := range keys {
		if _, ok := m.reg.Get(k); !ok && !registered[k] {
			if err := m.list.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete cluster %s: %w", k, err)
			}
		}
	}
	return nil
}

// open decrypts a credentials entry into a cluster.
func (m *Manager) open(e jetstream.KeyValueEntry) (*clusters.Cluster, error) {
	if m.sealer == nil {
		return nil, errors.New("no credentials key configured (-credentials.key-file)")
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("decode credentials: %w", err)
	}
	plain, err := m.sealer.Open(e.Key(), r.Sealed)
	if err != nil {
		return nil, err
	}
	return build(e.Key(), plain, r.Server)
}

// build makes a cluster of a kubeconfig's current context.
func build(name string, kubeconfig []byte, server string) (*clusters.Cluster, error) {
	if err := inlineOnly(kubeconfig); err != nil {
		return nil, err
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	c, err := clusters.FromREST(name, rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if server != "" {
		c.Server = strings.TrimSuffix(server, "/")
	}
	return c, nil
}

// inlineOnly refuses a registered kubeconfig that would make the provisioner
// run a command (exec, auth-provider plugins) or read its own files (token,
// certificate and key files; client-go reads them while parsing, so this
// looks before): a registration carries its credentials inline, and nobody
// who may register a cluster gets to act on the provisioner's host.
func inlineOnly(kubeconfig []byte) error {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	for name, ai := range cfg.AuthInfos {
		switch {
		case ai.Exec != nil:
			return fmt.Errorf("kubeconfig user %s: exec credential plugins are not accepted; embed the credentials inline (token or client-certificate-data)", name)
		case ai.AuthProvider != nil:
			return fmt.Errorf("kubeconfig user %s: auth-provider plugins are not accepted; embed the credentials inline (token or client-certificate-data)", name)
		case ai.TokenFile != "":
			return fmt.Errorf("kubeconfig user %s: tokenFile is not accepted; embed the token inline", name)
		case ai.ClientCertificate != "" || ai.ClientKey != "":
			return fmt.Errorf("kubeconfig user %s: certificate and key files are not accepted; use client-certificate-data and client-key-data", name)
		}
	}
	for name, c := range cfg.Clusters {
		if c.CertificateAuthority != "" {
			return fmt.Errorf("kubeconfig cluster %s: certificate-authority files are not accepted; use certificate-authority-data", name)
		}
	}
	return nil
}

func (m *Manager) entry(name string, simulated bool, problem string) events.Cluster {
	return events.Cluster{Name: name, Simulated: simulated, Registered: !m.static[name],
		Unhealthy: problem != "", Error: problem, At: m.now().UTC()}
}

// publish writes c into EGS_CLUSTERS unless it holds the same already.
func (m *Manager) publish(ctx context.Context, c events.Cluster) error {
	m.mu.Lock()
	old, ok := m.state[c.Name]
	m.mu.Unlock()
	if ok && same(old, c) {
		return nil
	}
	if e, err := m.list.Get(ctx, c.Name); err == nil {
		var cur events.Cluster
		if json.Unmarshal(e.Value(), &cur) == nil && same(cur, c) {
			m.remember(c)
			return nil
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode cluster %s: %w", c.Name, err)
	}
	if _, err := m.list.Put(ctx, c.Name, b); err != nil {
		return fmt.Errorf("put cluster %s: %w", c.Name, err)
	}
	m.remember(c)
	return nil
}

func (m *Manager) remember(c events.Cluster) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state[c.Name] = c
}

func same(a, b events.Cluster) bool {
	a.At, b.At = time.Time{}, time.Time{}
	return a == b
}

// Run follows the credentials bucket (registrations by any replica) and
// probes the health of every served real cluster until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	for _, c := range m.reg.List() {
		m.monitor(ctx, c)
	}
	for ctx.Err() == nil {
		if err := m.follow(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("cluster registrations; will retry", logkey.Err, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	m.mu.Lock()
	for _, cancel := range m.monitors {
		cancel()
	}
	m.mu.Unlock()
	return nil
}

func (m *Manager) follow(ctx context.Context) error {
	w, err := m.creds.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", events.BucketClusterCredentials, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("credentials watcher closed")
			}
			if e == nil || m.static[e.Key()] {
				continue
			}
			if e.Operation() == jetstream.KeyValuePut {
				m.add(ctx, e)
			} else {
				m.remove(ctx, e.Key())
			}
		}
	}
}

func (m *Manager) add(ctx context.Context, e jetstream.KeyValueEntry) {
	m.mu.Lock()
	seen := m.loaded[e.Key()] == e.Revision()
	m.mu.Unlock()
	if seen {
		return
	}
	log := m.log.With(logkey.Cluster, e.Key())
	c, err := m.open(e)
	if err != nil {
		log.Error("registered cluster cannot be served", logkey.Err, err)
		return
	}
	m.reg.Put(c)
	if err := m.served.AddCluster(c.Name, c); err != nil {
		log.Error("serve registered cluster", logkey.Err, err)
		return
	}
	m.mu.Lock()
	m.loaded[e.Key()] = e.Revision()
	m.mu.Unlock()
	m.monitor(ctx, c)
	log.Info("cluster registered; serving it")
}

func (m *Manager) remove(ctx context.Context, name string) {
	m.mu.Lock()
	delete(m.loaded, name)
	delete(m.state, name)
	if cancel, ok := m.monitors[name]; ok {
		cancel()
		delete(m.monitors, name)
	}
	m.mu.Unlock()
	m.reg.Remove(name)
	if err := m.served.RemoveCluster(ctx, name); err != nil {
		m.log.Warn("stop serving cluster", logkey.Cluster, name, logkey.Err, err)
	}
	if err := m.list.Delete(ctx, name); err != nil {
		m.log.Warn("delete cluster entry", logkey.Cluster, name, logkey.Err, err)
	}
	m.log.Info("cluster unregistered", logkey.Cluster, name)
}

// monitor (re)starts the health probe of c: /readyz every interval while it
// answers, with backoff from 1 s to 1 min while it does not. Each change is
// published in EGS_CLUSTERS.
func (m *Manager) monitor(ctx context.Context, c *clusters.Cluster) {
	mctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	if old, ok := m.monitors[c.Name]; ok {
		old()
	}
	m.monitors[c.Name] = cancel
	m.mu.Unlock()
	if c.Simulated {
		return
	}
	go func() {
		backoff := time.Second
		for {
			problem := probe(mctx, c)
			if mctx.Err() != nil {
				return
			}
			if err := m.publish(mctx, m.entry(c.Name, false, problem)); err != nil && mctx.Err() == nil {
				m.log.Warn("publish cluster health", logkey.Cluster, c.Name, logkey.Err, err)
			}
			wait := m.interval
			if problem != "" {
				m.log.Warn("cluster unreachable", logkey.Cluster, c.Name, "retry_in", backoff, logkey.Err, problem)
				wait, backoff = backoff, min(2*backoff, time.Minute)
			} else {
				backoff = time.Second
			}
			select {
			case <-mctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

// probe returns "" when the API server answers /readyz, else the problem.
func probe(ctx context.Context, c *clusters.Cluster) string {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc := c.Client.Discovery().RESTClient()
	if rc == nil {
		return ""
	}
	if err := rc.Get().AbsPath("/readyz").Do(pctx).Error(); err != nil {
		return err.Error()
	}
	return ""
}

// admin reports whether c may register clusters: the admin (token or admin
// user) or an Owner API key, which is bound to no workspace.
func admin(c rpc.Caller) bool { return c.Role == "admin" || c.Role == "Owner" && c.Workspace == "" }

// httpsURL reports whether s is an https URL with a host.
func httpsURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Hostname() != ""
}

// Register answers events.RPCClusterRegister.
func (m *Manager) Register(ctx context.Context, req rpc.ClusterRegisterRequest) (events.Cluster, error) {
	switch {
	case !admin(req.Caller):
		return events.Cluster{}, rpc.Errorf(rpc.Forbidden, "only admins register clusters")
	case len(validation.IsDNS1123Label(req.Name)) > 0 || !events.ValidToken(req.Name):
		return events.Cluster{}, rpc.Errorf(rpc.BadRequest, "cluster name %q must be a DNS label", req.Name)
	case m.static[req.Name]:
		return events.Cluster{}, rpc.Errorf(rpc.Conflict, "cluster %s is configured, not registered", req.Name)
	case m.sealer == nil:
		return events.Cluster{}, rpc.Errorf(rpc.Unavailable, "cluster registration needs a credentials key (-credentials.key-file)")
	case req.Server != "" && !httpsURL(req.Server):
		return events.Cluster{}, rpc.Errorf(rpc.BadRequest, "server must be an https:// URL with a host, got %q", req.Server)
	}
	if _, err := build(req.Name, []byte(req.KubeConfig), req.Server); err != nil {
		return events.Cluster{}, rpc.Errorf(rpc.BadRequest, "%v", err)
	}
	b, err := json.Marshal(record{Sealed: m.sealer.Seal(req.Name, []byte(req.KubeConfig)), Server: req.Server, At: m.now().UTC()})
	if err != nil {
		return events.Cluster{}, rpc.Errorf(rpc.Internal, "encode: %v", err)
	}
	if _, err := m.creds.Put(ctx, req.Name, b); err != nil {
		return events.Cluster{}, rpc.Errorf(rpc.Unavailable, "store credentials: %v", err)
	}
	m.log.Info("cluster registration stored", logkey.Cluster, req.Name, "by", req.Caller.Subject)
	return m.entry(req.Name, false, ""), nil
}

// Unregister answers events.RPCClusterUnregister.
func (m *Manager) Unregister(ctx context.Context, req rpc.ClusterRef) (events.Cluster, error) {
	switch {
	case !admin(req.Caller):
		return events.Cluster{}, rpc.Errorf(rpc.Forbidden, "only admins unregister clusters")
	case m.static[req.Name]:
		return events.Cluster{}, rpc.Errorf(rpc.Conflict, "cluster %s is configured, not registered", req.Name)
	}
	if _, err := m.creds.Get(ctx, req.Name); errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return events.Cluster{}, rpc.Errorf(rpc.NotFound, "cluster %q is not registered", req.Name)
	} else if err != nil {
		return events.Cluster{}, rpc.Errorf(rpc.Unavailable, "%v", err)
	}
	if err := m.creds.Purge(ctx, req.Name); err != nil {
		return events.Cluster{}, rpc.Errorf(rpc.Unavailable, "delete credentials: %v", err)
	}
	m.log.Info("cluster registration deleted", logkey.Cluster, req.Name, "by", req.Caller.Subject)
	return events.Cluster{Name: req.Name, Registered: true, At: m.now().UTC()}, nil
}

// List answers events.RPCClusterList: the served clusters as EGS_CLUSTERS
// holds them.
func (m *Manager) List(ctx context.Context, _ rpc.ClusterListRequest) (rpc.ClusterList, error) {
	entries, err := bus.ReadAll(ctx, m.list, "")
	if err != nil {
		return rpc.ClusterList{}, rpc.Errorf(rpc.Unavailable, "%v", err)
	}
	out := rpc.ClusterList{Clusters: []events.Cluster{}}
	for _, e := range entries {
		var c events.Cluster
		if json.Unmarshal(e.Value(), &c) == nil {
			out.Clusters = append(out.Clusters, c)
		}
	}
	slices.SortFunc(out.Clusters, func(a, b events.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
