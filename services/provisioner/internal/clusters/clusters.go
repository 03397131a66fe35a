// Package clusters is the provisioner's set of served clusters: for each, a
// Kubernetes client and what a kubeconfig for its users needs (the server URL
// and CA). Clusters come and go at run time (registrations); the registry
// tells its subscribers.
package clusters

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

// Cluster is one served cluster.
type Cluster struct {
	Name   string
	Client kubernetes.Interface
	// Server is the API server URL written into users' kubeconfigs.
	Server string
	// CAData is the PEM CA bundle users' kubeconfigs trust; empty: the
	// system roots.
	CAData []byte
	// Simulated is true for fake clientsets (package sim).
	Simulated bool
}

// Client-side rate limits of a real cluster's client, unless the
// configuration sets its own: client-go's defaults (5/s, bursts of 10) are
// too low for the reconcile pass plus hand-overs.
const (
	DefaultQPS   = 50
	DefaultBurst = 100
)

// FromREST builds the cluster called name from a client configuration.
func FromREST(name string, rc *rest.Config) (*Cluster, error) {
	rc = rest.CopyConfig(rc)
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = DefaultQPS, DefaultBurst
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	ca := rc.CAData
	if len(ca) == 0 && rc.CAFile != "" {
		if err := rest.LoadTLSFiles(rc); err != nil {
			return nil, err
		}
		ca = rc.CAData
	}
	return &Cluster{Name: name, Client: kc, Server: strings.TrimSuffix(rc.Host, "/"), CAData: ca}, nil
}

// FromClient wraps a bare client (tests, simulations).
func FromClient(name string, kc kubernetes.Interface) *Cluster {
	_, simulated := kc.(*fake.Clientset)
	return &Cluster{Name: name, Client: kc, Simulated: simulated}
}

// Registry holds the served clusters; it is safe for concurrent use.
type Registry struct {
	mu   sync.RWMutex
	byID map[string]*Cluster
}

// NewRegistry returns a registry holding cs.
func NewRegistry(cs ...*Cluster) *Registry {
	r := &Registry{byID: map[string]*Cluster{}}
	for _, c := range cs {
		r.byID[c.Name] = c
	}
	return r
}

// Get returns the cluster called name.
func (r *Registry) Get(name string) (*Cluster, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.byID[name]
	return c, ok
}

// Put adds or replaces a cluster.
func (r *Registry) Put(c *Cluster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[c.Name] = c
}

// Remove drops the cluster called name.
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, name)
}

// List returns the clusters sorted by name.
func (r *Registry) List() []*Cluster {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := slices.Collect(maps.Values(r.byID))
	slices.SortFunc(out, func(a, b *Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Names returns the cluster names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.byID))
}
