package service

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/provisioner/sim"
)

// clusters builds the clusters of cfg: the kubeconfig's one real cluster,
// else the scenario file's simulated clusters, else the built-in scenario.
func clusters(cfg Config) (map[string]kubernetes.Interface, error) {
	if cfg.KubeConfig != "" {
		return kubeCluster(cfg.KubeConfig, cfg.ClusterName)
	}
	s := sim.Default()
	if cfg.Scenario != "" {
		var err error
		if s, err = sim.Load(cfg.Scenario); err != nil {
			return nil, err
		}
	}
	return sim.Clientsets(s), nil
}

func kubeCluster(path, name string) (map[string]kubernetes.Interface, error) {
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path}, &clientcmd.ConfigOverrides{})
	if name == "" {
		raw, err := loader.RawConfig()
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
		}
		name = raw.CurrentContext
		if len(validation.IsDNS1123Label(name)) > 0 || !events.ValidToken(name) {
			return nil, fmt.Errorf("kubeconfig %s: current context %q is not a valid cluster name: set -cluster.name", path, name)
		}
	}
	rc, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", name, err)
	}
	return map[string]kubernetes.Interface{name: kc}, nil
}

// simulated reports whether kc is a simulated (fake) cluster.
func simulated(kc kubernetes.Interface) bool {
	_, ok := kc.(*fake.Clientset)
	return ok
}
