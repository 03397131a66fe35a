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
}

// RegisterFlags registers the flags of c on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.KubeConfig, "kubeconfig", "", "Path of a kubeconfig: serve that one real cluster instead of simulated ones.")
	fs.StringVar(&c.ClusterName, "cluster.name", "", "Name of the kubeconfig's cluster (a DNS label); default: the kubeconfig's current context.")
	fs.StringVar(&c.Scenario, "scenario", "", "Simulated clusters file (YAML/JSON) when no -kubeconfig is given; default: the built-in scenario.")
	fs.DurationVar(&c.AckWait, "ack.wait", 30*time.Second, "Redelivery delay of an unacknowledged command.")
	fs.DurationVar(&c.HandlerTimeout, "handler.timeout", 10*time.Second, "Deadline of one provisioner command; keep below ack.wait.")
	fs.DurationVar(&c.RPCTimeout, "rpc.timeout", 5*time.Second, "Deadline of one request/reply call.")
	fs.IntVar(&c.InventoryWorkers, "inventory.workers", 4, "Nodes synced into the inventory concurrently.")
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
	return errors.Join(errs...)
}
