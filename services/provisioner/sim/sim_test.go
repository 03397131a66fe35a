package sim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/open-egs/egs/services/provisioner/internal/inventory"
	"github.com/open-egs/egs/services/provisioner/sim"
)

type shape struct {
	Product string
	MiB     int
	GPUs    int
	Nodes   int
}

func shapes(c sim.Cluster) map[string]shape {
	out := map[string]shape{}
	for _, g := range c.Nodes {
		s := out[g.InstanceType]
		s.Product, s.MiB, s.GPUs, s.Nodes = g.GPUProduct, g.GPUMemoryMiB, g.GPUs, s.Nodes+g.Count
		out[g.InstanceType] = s
	}
	return out
}

func TestDefault(t *testing.T) {
	s := sim.Default()
	h100 := func(n int) shape { return shape{"NVIDIA-H100-80GB-HBM3", 81559, 8, n} }
	a100 := func(n int) shape { return shape{"NVIDIA-A100-SXM4-40GB", 40960, 8, n} }
	want := map[string]map[string]shape{
		"worker-1": {"p5.48xlarge": h100(2), "a2-highgpu-8g": a100(1)},
		"worker-2": {"p5.48xlarge": h100(1), "a2-highgpu-8g": a100(2)},
	}
	got := map[string]map[string]shape{}
	for _, c := range s.Clusters {
		got[c.Name] = shapes(c)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("default scenario (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("default scenario invalid: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	tests := map[string]struct {
		clusters, nodes int
		wantNodes       int // per cluster
		wantClusters    int
	}{
		"benchmark size": {clusters: 4, nodes: 500, wantNodes: 500, wantClusters: 4},
		"odd count":      {clusters: 1, nodes: 3, wantNodes: 3, wantClusters: 1},
		"one node":       {clusters: 2, nodes: 1, wantNodes: 1, wantClusters: 2},
		"nothing":        {clusters: 0, nodes: 5, wantNodes: 0, wantClusters: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := sim.Generate(tc.clusters, tc.nodes)
			if len(s.Clusters) != tc.wantClusters {
				t.Fatalf("clusters = %d, want %d", len(s.Clusters), tc.wantClusters)
			}
			if tc.wantClusters == 0 {
				if err := s.Validate(); err == nil {
					t.Error("empty scenario validated")
				}
				return
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("generated scenario invalid: %v", err)
			}
			for _, c := range s.Clusters {
				if got := c.NodeCount(); got != tc.wantNodes {
					t.Errorf("cluster %s has %d nodes, want %d", c.Name, got, tc.wantNodes)
				}
				if got := len(sim.Nodes(c)); got != tc.wantNodes {
					t.Errorf("cluster %s builds %d node objects, want %d", c.Name, got, tc.wantNodes)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	const good = `
clusters:
  - name: lab
    nodes:
      - {namePrefix: gpu, count: 2, instanceType: g5.xlarge, gpuProduct: NVIDIA-A10G,
         gpuMemoryMiB: 23028, gpus: 1, region: eu-west-1, cloudProvider: aws}
`
	tests := map[string]struct {
		body    string // "" means: no file
		wantErr string
	}{
		"good":              {body: good},
		"json":              {body: `{"clusters":[{"name":"c1","nodes":[{"namePrefix":"n","count":1,"instanceType":"x","gpuProduct":"p","gpuMemoryMiB":1024,"gpus":1}]}]}`},
		"missing file":      {wantErr: "read scenario"},
		"bad cluster name":  {body: strings.Replace(good, "name: lab", "name: Lab_1", 1), wantErr: `name "Lab_1"`},
		"dotted name":       {body: strings.Replace(good, "name: lab", "name: lab.x", 1), wantErr: `name "lab.x"`},
		"zero count":        {body: strings.Replace(good, "count: 2", "count: 0", 1), wantErr: "count must be > 0"},
		"negative gpus":     {body: strings.Replace(good, "gpus: 1", "gpus: -1", 1), wantErr: "gpus must be > 0"},
		"unknown key":       {body: strings.Replace(good, "count: 2", "count: 2, colour: red", 1), wantErr: "colour"},
		"no clusters":       {body: "clusters: []", wantErr: "no clusters"},
		"not yaml":          {body: "clusters: [", wantErr: "decode"},
		"duplicate cluster": {body: good + strings.TrimPrefix(good, "\nclusters:\n"), wantErr: `duplicate cluster "lab"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scenario.yaml")
			if tc.body != "" {
				if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := sim.Load(path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if len(s.Clusters) != 1 {
					t.Errorf("clusters = %d, want 1", len(s.Clusters))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestClientsets(t *testing.T) {
	s := sim.Default()
	cs := sim.Clientsets(s)
	if len(cs) != 2 {
		t.Fatalf("clientsets = %d, want 2", len(cs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := cs["worker-1"].CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("worker-1 nodes = %d, want 3", len(list.Items))
	}
	got := map[string]string{}
	for i := range list.Items {
		n := &list.Items[i]
		inv, ok := inventory.FromNode("worker-1", n, time.Time{})
		if !ok {
			t.Fatalf("node %s has no GPU capacity", n.Name)
		}
		if !inv.Ready || inv.Unschedulable || !inv.Managed || inv.GPUCount != 8 {
			t.Errorf("node %s = %+v, want ready, schedulable, managed, 8 GPUs", n.Name, inv)
		}
		if n.Labels[inventory.LabelGPUCount] != "8" || n.Status.Allocatable.Name(inventory.ResourceGPU, "").Value() != 8 {
			t.Errorf("node %s: gpu.count label / allocatable wrong: %v", n.Name, n.Labels)
		}
		got[n.Name] = inv.CloudProvider + " " + inv.Region + " " + inv.GPUProduct + " " + strconv.Itoa(inv.GPUMemoryGB)
	}
	want := map[string]string{
		"w1-h100-0": "aws us-east-1 NVIDIA-H100-80GB-HBM3 80",
		"w1-h100-1": "aws us-east-1 NVIDIA-H100-80GB-HBM3 80",
		"w1-a100-0": "gcp us-central1 NVIDIA-A100-SXM4-40GB 40",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("worker-1 inventory (-want +got):\n%s", diff)
	}
}

// TestWatchSurvivesABurst: more writes than the fake tracker's watch buffer
// (100) while nobody reads the watch neither panic nor lose an event.
func TestWatchSurvivesABurst(t *testing.T) {
	cs := sim.Clientsets(sim.Default())["worker-1"]
	ctx := context.Background()
	w, err := cs.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("nodes: %v %v", len(nodes.Items), err)
	}
	const writes = 500
	for i := range writes {
		n := nodes.Items[i%len(nodes.Items)].Name
		patch := fmt.Sprintf(`{"metadata":{"labels":{"burst":"%d"}}}`, i)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The watch may start with the existing nodes (ADDED); then come the
	// patches, every one of them.
	for modified := 0; modified < writes; {
		select {
		case ev := <-w.ResultChan():
			switch ev.Type {
			case watch.Modified:
				modified++
			case watch.Added:
			default:
				t.Fatalf("unexpected %s event", ev.Type)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d modifications", modified, writes)
		}
	}
}
