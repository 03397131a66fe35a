// Package sim describes simulated Kubernetes clusters of GPU nodes and seeds
// client-go fake clientsets with them, so the provisioner (and the standalone
// product, tests and benchmarks) run end to end without a real cluster.
//
// A scenario is YAML or JSON:
//
//	clusters:
//	  - name: worker-1
//	    nodes:
//	      - {namePrefix: w1-h100, count: 2, instanceType: p5.48xlarge,
//	         gpuProduct: NVIDIA-H100-80GB-HBM3, gpuMemoryMiB: 81559, gpus: 8,
//	         region: us-east-1, cloudProvider: aws}
//
// Node i (from 0) of a group is named <namePrefix>-<i>.
package sim

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/open-egs/egs/libs/events"
)

// Scenario is a set of simulated clusters.
type Scenario struct {
	Clusters []Cluster `json:"clusters"`
}

// Cluster is one simulated cluster; Name is a DNS label and a subject token.
type Cluster struct {
	Name  string      `json:"name"`
	Nodes []NodeGroup `json:"nodes"`
}

// NodeGroup is Count identical GPU nodes.
type NodeGroup struct {
	NamePrefix    string `json:"namePrefix"`
	Count         int    `json:"count"`
	InstanceType  string `json:"instanceType"`
	GPUProduct    string `json:"gpuProduct"`
	GPUMemoryMiB  int    `json:"gpuMemoryMiB"` // per GPU, as GPU feature discovery labels it
	GPUs          int    `json:"gpus"`         // per node
	Region        string `json:"region"`
	CloudProvider string `json:"cloudProvider"` // aws, gcp, azure, or anything else
}

// NodeName is the name of node i (from 0) of the group.
func (g NodeGroup) NodeName(i int) string { return fmt.Sprintf("%s-%d", g.NamePrefix, i) }

// NodeCount is the number of nodes in the cluster.
func (c Cluster) NodeCount() int {
	n := 0
	for _, g := range c.Nodes {
		n += g.Count
	}
	return n
}

//go:embed default.yaml
var defaultYAML []byte

// Default is the built-in scenario: clusters worker-1 (2 x p5.48xlarge with
// 8 x NVIDIA-H100-80GB-HBM3, 1 x a2-highgpu-8g with 8 x NVIDIA-A100-SXM4-40GB)
// and worker-2 (1 x H100 node, 2 x A100 nodes).
func Default() Scenario {
	s, err := Parse(defaultYAML)
	if err != nil {
		panic("sim: embedded default scenario: " + err.Error()) // a build defect
	}
	return s
}

// Load reads and validates the scenario file at path (YAML or JSON; unknown
// keys are errors).
func Load(path string) (Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a scenario document.
func Parse(b []byte) (Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return Scenario{}, fmt.Errorf("decode: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Scenario{}, err
	}
	return s, nil
}

// Validate reports every problem of the scenario at once.
func (s Scenario) Validate() error {
	var errs []error
	if len(s.Clusters) == 0 {
		errs = append(errs, errors.New("no clusters"))
	}
	clusters := map[string]bool{}
	for i, c := range s.Clusters {
		where := fmt.Sprintf("clusters[%d]", i)
		if msgs := validation.IsDNS1123Label(c.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: name %q: %s", where, c.Name, strings.Join(msgs, "; ")))
		} else if !events.ValidToken(c.Name) {
			errs = append(errs, fmt.Errorf("%s: name %q is not a valid subject token", where, c.Name))
		}
		if clusters[c.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate cluster %q", where, c.Name))
		}
		clusters[c.Name] = true
		if len(c.Nodes) == 0 {
			errs = append(errs, fmt.Errorf("%s: no nodes", where))
		}
		nodes := map[string]bool{}
		for j, g := range c.Nodes {
			where := fmt.Sprintf("%s.nodes[%d]", where, j)
			if g.Count <= 0 {
				errs = append(errs, fmt.Errorf("%s: count must be > 0, got %d", where, g.Count))
			}
			if g.GPUs <= 0 {
				errs = append(errs, fmt.Errorf("%s: gpus must be > 0, got %d", where, g.GPUs))
			}
			if g.GPUMemoryMiB <= 0 {
				errs = append(errs, fmt.Errorf("%s: gpuMemoryMiB must be > 0, got %d", where, g.GPUMemoryMiB))
			}
			if g.GPUProduct == "" {
				errs = append(errs, fmt.Errorf("%s: gpuProduct is required", where))
			}
			if g.InstanceType == "" {
				errs = append(errs, fmt.Errorf("%s: instanceType is required", where))
			}
			if msgs := validation.IsDNS1123Label(g.NodeName(0)); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("%s: namePrefix %q: %s", where, g.NamePrefix, strings.Join(msgs, "; ")))
				continue
			}
			for k := 0; k < g.Count; k++ {
				name := g.NodeName(k)
				if nodes[name] {
					errs = append(errs, fmt.Errorf("%s: duplicate node %q", where, name))
					break
				}
				nodes[name] = true
			}
		}
	}
	return errors.Join(errs...)
}

// Shapes of Generate, the two of Default.
var (
	shapeH100 = NodeGroup{InstanceType: "p5.48xlarge", GPUProduct: "NVIDIA-H100-80GB-HBM3",
		GPUMemoryMiB: 81559, GPUs: 8, Region: "us-east-1", CloudProvider: "aws"}
	shapeA100 = NodeGroup{InstanceType: "a2-highgpu-8g", GPUProduct: "NVIDIA-A100-SXM4-40GB",
		GPUMemoryMiB: 40960, GPUs: 8, Region: "us-central1", CloudProvider: "gcp"}
)

// Generate builds a large scenario for benchmarks: clusters worker-1 ..
// worker-<clusters>, each with nodesPerCluster 8-GPU nodes, the first half
// (rounded up) H100 nodes named h100-<i>, the rest A100 nodes named a100-<i>.
// Non-positive arguments give an empty (invalid) scenario.
func Generate(clusters, nodesPerCluster int) Scenario {
	var s Scenario
	if clusters <= 0 || nodesPerCluster <= 0 {
		return s
	}
	h100 := (nodesPerCluster + 1) / 2
	for i := 1; i <= clusters; i++ {
		c := Cluster{Name: fmt.Sprintf("worker-%d", i)}
		g := shapeH100
		g.NamePrefix, g.Count = "h100", h100
		c.Nodes = append(c.Nodes, g)
		if a100 := nodesPerCluster - h100; a100 > 0 {
			g := shapeA100
			g.NamePrefix, g.Count = "a100", a100
			c.Nodes = append(c.Nodes, g)
		}
		s.Clusters = append(s.Clusters, c)
	}
	return s
}
