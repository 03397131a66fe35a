package service

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/open-egs/egs/libs/events"
)

// Config is the provisioner's configuration; its flags are the schema.
type Config struct {
	// KubeConfig is the path of a kubeconfig file: when set, the provisioner
	// serves that one real cluster.
	KubeConfig string
	// ClusterName names the kubeconfig's cluster; default: its current context.
	ClusterName string
	// Scenario is a simulated-cluster file (see package sim), used when
	// KubeConfig is empty; when both are empty the built-in scenario is used.
	Scenario string
	// AckWait is how long an unacknowledged command waits before redelivery
	// (a crashed provisioner's command goes to the next one after it).
	AckWait time.Duration
	// HandlerTimeout bounds the handling of one command (keep below AckWait).
	HandlerTimeout time.Duration
	// RPCTimeout bounds one request/reply call.
	RPCTimeout time.Duration
	// InventoryWorkers is how many nodes are synced into the inventory at once.
	InventoryWorkers int
	// TokenTTL is the lifetime of the tokens in issued kubeconfigs.
	TokenTTL time.Duration
	// EvictionDeadline is how long PodDisruptionBudgets may hold up the
	// release of a GPR's nodes; after it, the pods are deleted.
	EvictionDeadline time.Duration
	// EvictionWait is how long one handling of a release retries refused
	// evictions before the command is redelivered (at most HandlerTimeout/2).
	EvictionWait time.Duration
	// ReconcileInterval is the period of the full pass over every
	// workspace's objects on every cluster.
	ReconcileInterval time.Duration
	// CredentialsKeyFile holds the AES-256 key that seals registered
	// clusters' kubeconfigs at rest (created when missing); empty disables
	// registration at run time.
	CredentialsKeyFile string
	// HealthInterval is the period of the /readyz probe of a healthy cluster.
	HealthInterval time.Duration
	// SyncTimeout bounds the wait for a cluster's first node list at start.
	SyncTimeout time.Duration
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.KubeConfig, "kubeconfig", "", "Path of a kubeconfig: serve that one real cluster instead of simulated ones; \"in-cluster\": the cluster the provisioner runs in.")
	fs.StringVar(&c.ClusterName, "cluster.name", "", "Name of the kubeconfig's cluster (a DNS label); default: the kubeconfig's current context.")
	fs.StringVar(&c.Scenario, "scenario", "", "Simulated clusters file (YAML/JSON) when no -kubeconfig is given; default: the built-in scenario.")
	fs.DurationVar(&c.AckWait, "ack.wait", 30*time.Second, "Redelivery delay of an unacknowledged command.")
	fs.DurationVar(&c.HandlerTimeout, "handler.timeout", 10*time.Second, "Deadline of one provisioner command; keep below ack.wait.")
	fs.DurationVar(&c.RPCTimeout, "rpc.timeout", 5*time.Second, "Deadline of one request/reply call.")
	fs.IntVar(&c.InventoryWorkers, "inventory.workers", 4, "Nodes synced into the inventory concurrently.")
	fs.DurationVar(&c.TokenTTL, "kubeconfig.ttl", 24*time.Hour, "Lifetime of the ServiceAccount token in a downloaded kubeconfig (10m to 30d).")
	fs.DurationVar(&c.EvictionDeadline, "eviction.deadline", time.Minute, "How long PodDisruptionBudgets may hold up a release before pods are deleted.")
	fs.DurationVar(&c.EvictionWait, "eviction.wait", 5*time.Second, "How long one attempt at a release retries refused evictions (at most half of handler.timeout).")
	fs.DurationVar(&c.ReconcileInterval, "reconcile.interval", time.Minute, "Period of the full pass over every workspace's namespaces, RBAC and quotas.")
	fs.StringVar(&c.CredentialsKeyFile, "credentials.key-file", "", "File of the AES-256 key sealing registered clusters' kubeconfigs (created when missing); empty: no registration at run time.")
	fs.DurationVar(&c.HealthInterval, "cluster.health-interval", 10*time.Second, "Period of the /readyz probe of each healthy cluster (backoff up to 1m while one fails).")
	fs.DurationVar(&c.SyncTimeout, "cluster.sync-timeout", 30*time.Second, "How long start-up waits for a cluster's nodes before serving the others.")
}

// withDefaults fills the zero durations of settings added after the first
// release with their flag defaults (configurations built in code).
func (c Config) withDefaults() Config {
	if c.TokenTTL == 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.EvictionDeadline == 0 {
		c.EvictionDeadline = time.Minute
	}
	if c.EvictionWait == 0 {
		c.EvictionWait = min(5*time.Second, c.HandlerTimeout/2)
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = time.Minute
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 10 * time.Second
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 30 * time.Second
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.ClusterName != "" {
		if msgs := validation.IsDNS1123Label(c.ClusterName); len(msgs) > 0 || !events.ValidToken(c.ClusterName) {
			errs = append(errs, fmt.Errorf("cluster.name %q must be a DNS label (lowercase letters, digits, '-')", c.ClusterName))
		}
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.HandlerTimeout <= 0 || c.HandlerTimeout >= c.AckWait {
		errs = append(errs, fmt.Errorf("handler.timeout must be in (0, ack.wait=%s), got %s", c.AckWait, c.HandlerTimeout))
	}
	if c.RPCTimeout <= 0 {
		errs = append(errs, fmt.Errorf("rpc.timeout must be > 0, got %s", c.RPCTimeout))
	}
	if c.InventoryWorkers <= 0 {
		errs = append(errs, fmt.Errorf("inventory.workers must be > 0, got %d", c.InventoryWorkers))
	}
	if c.TokenTTL < 10*time.Minute || c.TokenTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("kubeconfig.ttl must be in [10m, 720h], got %s", c.TokenTTL))
	}
	if c.EvictionDeadline < 0 {
		errs = append(errs, fmt.Errorf("eviction.deadline must be >= 0, got %s", c.EvictionDeadline))
	}
	if c.EvictionWait < 0 {
		errs = append(errs, fmt.Errorf("eviction.wait must be >= 0, got %s", c.EvictionWait))
	}
	if c.ReconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconcile.interval must be > 0, got %s", c.ReconcileInterval))
	}
	if c.HealthInterval <= 0 || c.SyncTimeout <= 0 {
		errs = append(errs, fmt.Errorf("cluster.health-interval and cluster.sync-timeout must be > 0, got %s and %s", c.HealthInterval, c.SyncTimeout))
	}
	return errors.Join(errs...)
}
