package service

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/provisioner/internal/clusters"
	"github.com/open-egs/egs/services/provisioner/sim"
)

// staticClusters builds the clusters of d: Deps.Clusters and Deps.RESTConfigs
// when given, else the kubeconfig's one real cluster, else the scenario
// file's simulated clusters, else the built-in scenario.
func staticClusters(d Deps) ([]*clusters.Cluster, error) {
	var out []*clusters.Cluster
	if d.Clusters != nil || d.RESTConfigs != nil {
		for name, kc := range d.Clusters {
			out = append(out, clusters.FromClient(name, kc))
		}
		for name, rc := range d.RESTConfigs {
			c, err := clusters.FromREST(name, rc)
			if err != nil {
				return nil, fmt.Errorf("kubernetes client for %s: %w", name, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	cfg := d.Config
	if cfg.KubeConfig != "" {
		c, err := kubeCluster(cfg.KubeConfig, cfg.ClusterName)
		if err != nil {
			return nil, err
		}
		return []*clusters.Cluster{c}, nil
	}
	s := sim.Default()
	if cfg.Scenario != "" {
		var err error
		if s, err = sim.Load(cfg.Scenario); err != nil {
			return nil, err
		}
	}
	for name, kc := range sim.Clientsets(s) {
		out = append(out, clusters.FromClient(name, kc))
	}
	return out, nil
}

// InCluster is the -kubeconfig value that serves the cluster the provisioner runs in.
const InCluster = "in-cluster"

func kubeCluster(path, name string) (*clusters.Cluster, error) {
	if path == InCluster {
		if name == "" {
			name = "local"
		}
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster credentials: %w", err)
		}
		return clusters.FromREST(name, rc)
	}
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
	c, err := clusters.FromREST(name, rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", name, err)
	}
	return c, nil
}
