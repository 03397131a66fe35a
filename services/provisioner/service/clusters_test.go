package service

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: secret}
contexts:
- name: CONTEXT
  context: {cluster: c, user: u}
current-context: CONTEXT
`

func TestClusters(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", strings.ReplaceAll(kubeconfig, "CONTEXT", "lab-1"))
	odd := write("odd", strings.ReplaceAll(kubeconfig, "CONTEXT", "admin@Lab"))
	scenario := write("scenario.yaml", `{"clusters":[{"name":"s1","nodes":[{"namePrefix":"n","count":1,"instanceType":"x","gpuProduct":"p","gpuMemoryMiB":1024,"gpus":1}]}]}`)
	tests := map[string]struct {
		cfg       Config
		want      []string
		simulated bool
		server    string
		wantErr   string
	}{
		"default scenario":        {want: []string{"worker-1", "worker-2"}, simulated: true},
		"scenario file":           {cfg: Config{Scenario: scenario}, want: []string{"s1"}, simulated: true},
		"missing scenario":        {cfg: Config{Scenario: filepath.Join(dir, "none")}, wantErr: "read scenario"},
		"kubeconfig context":      {cfg: Config{KubeConfig: good, Scenario: scenario}, want: []string{"lab-1"}, server: "https://127.0.0.1:6443"},
		"kubeconfig named":        {cfg: Config{KubeConfig: odd, ClusterName: "lab"}, want: []string{"lab"}},
		"context not a name":      {cfg: Config{KubeConfig: odd}, wantErr: "set -cluster.name"},
		"missing kubeconfig file": {cfg: Config{KubeConfig: filepath.Join(dir, "none")}, wantErr: "kubeconfig"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := staticClusters(Deps{Config: tc.cfg})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("clusters error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
				if c.Simulated != tc.simulated {
					t.Errorf("cluster %s simulated = %v, want %v", c.Name, c.Simulated, tc.simulated)
				}
				if tc.server != "" && c.Server != tc.server {
					t.Errorf("cluster %s server = %q, want %q", c.Name, c.Server, tc.server)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.want) {
				t.Errorf("clusters = %v, want %v", names, tc.want)
			}
		})
	}
}
