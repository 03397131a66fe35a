package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/kubetest"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/provisioner/service"
)

// The two real control planes of this package's tests, started on first use
// and stopped by TestMain.
var (
	planesOnce sync.Once
	planes     map[string]*kubetest.ControlPlane
	planesErr  error
	planeDirs  []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range planes {
		c.Stop()
	}
	if code == 0 {
		for _, d := range planeDirs {
			_ = os.RemoveAll(d)
		}
	} else if len(planeDirs) > 0 {
		fmt.Println("control plane logs kept in", planeDirs)
	}
	os.Exit(code)
}

// kubeClusters returns the clusters kube-a and kube-b (real API servers).
func kubeClusters(t *testing.T) map[string]*kubetest.ControlPlane {
	t.Helper()
	planesOnce.Do(func() {
		planes = map[string]*kubetest.ControlPlane{}
		for _, name := range []string{"kube-a", "kube-b"} {
			dir, err := os.MkdirTemp("", "egs-kube-")
			if err != nil {
				planesErr = err
				return
			}
			planeDirs = append(planeDirs, dir)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			c, err := kubetest.Start(ctx, kubetest.Options{Dir: dir, Name: name})
			cancel()
			if err != nil {
				planesErr = fmt.Errorf("%s: %w", name, err)
				return
			}
			planes[name] = c
		}
	})
	if planesErr != nil {
		t.Fatalf("control planes: %v", planesErr)
	}
	return planes
}

func restConfig(t *testing.T, kubeconfig []byte) *rest.Config {
	t.Helper()
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig: %v\n%s", err, kubeconfig)
	}
	return rc
}

func clientOf(t *testing.T, rc *rest.Config) kubernetes.Interface {
	t.Helper()
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// gpuNode is a GPU node as GPU feature discovery and a cloud label it, Ready.
func gpuNode(name string, gpus int64, mutate ...func(*corev1.Node)) *corev1.Node {
	res := corev1.ResourceList{
		"nvidia.com/gpu":      *resource.NewQuantity(gpus, resource.DecimalSI),
		corev1.ResourceCPU:    resource.MustParse("96"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"node.kubernetes.io/instance-type": "p5.48xlarge",
			"nvidia.com/gpu.product":           "NVIDIA-H100-80GB-HBM3",
			"nvidia.com/gpu.memory":            "81559",
			"nvidia.com/gpu.count":             fmt.Sprint(gpus),
			"topology.kubernetes.io/region":    "us-east-1",
		}},
		Spec: corev1.NodeSpec{ProviderID: "aws:///us-east-1a/i-" + name},
		Status: corev1.NodeStatus{
			Capacity: res, Allocatable: res.DeepCopy(),
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		},
	}
	for _, f := range mutate {
		f(n)
	}
	return n
}

func createNodes(t *testing.T, kc kubernetes.Interface, nodes ...*corev1.Node) {
	t.Helper()
	for _, n := range nodes {
		if _, err := kc.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", n.Name, err)
		}
	}
}

// pod builds a pod; gpus > 0 requests nvidia.com/gpu; node binds it (there
// is no scheduler). Its grace period is 0, so an eviction removes it at once
// (there is no kubelet either).
func pod(name, node string, gpus int64, labels map[string]string) *corev1.Pod {
	var zero int64
	c := corev1.Container{Name: "main", Image: "registry.invalid/train:1"}
	if gpus > 0 {
		q := *resource.NewQuantity(gpus, resource.DecimalSI)
		c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{"nvidia.com/gpu": q},
			Limits: corev1.ResourceList{"nvidia.com/gpu": q}}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: &zero}}
}

// createPod creates p in ns, retrying while the namespace's default
// ServiceAccount (made by kube-controller-manager) is not there yet.
func createPod(ctx context.Context, kc kubernetes.Interface, ns string, p *corev1.Pod) (*corev1.Pod, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := kc.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err == nil || !apierrors.IsForbidden(err) || time.Now().After(deadline) ||
			!containsAny(err.Error(), "serviceaccount", "service account") {
			return got, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}

// putWorkspace writes a workspace record as the workspace service does.
func putWorkspace(t *testing.T, kv jetstream.KeyValue, name string, clusters, namespaces []string) {
	t.Helper()
	b, err := json.Marshal(rpc.Workspace{Name: name, Clusters: clusters, Namespaces: namespaces})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), name, b); err != nil {
		t.Fatal(err)
	}
}

// runProvisioner runs the service on the clusters until the returned stop is
// called (or the test ends); it returns once the service is ready. stop
// returns what Run returned.
func runProvisioner(t *testing.T, nc *nats.Conn, planes map[string]*kubetest.ControlPlane, tune func(*service.Config),
	crash func(string)) (stop func() error) {
	t.Helper()
	cfg := service.Config{HandlerTimeout: 5 * time.Second, AckWait: 8 * time.Second, RPCTimeout: 10 * time.Second,
		InventoryWorkers: 2, EvictionDeadline: 3 * time.Second, EvictionWait: time.Second, ReconcileInterval: 5 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	rcs := map[string]*rest.Config{}
	for name, c := range planes {
		rcs[name] = provisionerIdentity(t, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		var w io.Writer = io.Discard
		if os.Getenv("EGS_TEST_LOG") != "" {
			w = os.Stderr
		}
		done <- service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: slog.New(slog.NewTextHandler(w, nil)),
			Ready: func() { close(ready) }, RESTConfigs: rcs, CrashPoint: crash})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("provisioner ended early: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("provisioner not ready")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("provisioner did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// provisionerIdentity gives the provisioner a ServiceAccount bound to the
// ClusterRole of deploy/kubernetes (and nothing else), and returns a client
// configuration with its token: the tests prove that role is enough.
func provisionerIdentity(t *testing.T, c *kubetest.ControlPlane) *rest.Config {
	t.Helper()
	ctx := context.Background()
	admin := clientOf(t, restConfig(t, c.KubeconfigYAML()))
	b, err := os.ReadFile("../../../deploy/kubernetes/provisioner-clusterrole.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("deploy ClusterRole: %v", err)
	}
	ignoreExists := func(what string, err error) {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	ignoreExists("cluster role", err)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "egs-system"}}, metav1.CreateOptions{})
	ignoreExists("namespace egs-system", err)
	_, err = admin.CoreV1().ServiceAccounts("egs-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "egs-provisioner"}}, metav1.CreateOptions{})
	ignoreExists("service account", err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "egs-provisioner"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "egs-provisioner", Namespace: "egs-system"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
	}, metav1.CreateOptions{})
	ignoreExists("cluster role binding", err)
	secs := int64(3600)
	tr, err := admin.CoreV1().ServiceAccounts("egs-system").CreateToken(ctx, "egs-provisioner",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("provisioner token: %v", err)
	}
	return &rest.Config{Host: c.Host, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM}}
}

func hasToleration(p *corev1.Pod, ws string) bool {
	return slices.ContainsFunc(p.Spec.Tolerations, func(t corev1.Toleration) bool {
		return t.Key == "egs.io/workspace" && t.Value == ws && t.Effect == corev1.TaintEffectNoSchedule
	})
}

func quotaHard(t *testing.T, kc kubernetes.Interface, ns string) (spec, status int64) {
	t.Helper()
	q, err := kc.CoreV1().ResourceQuotas(ns).Get(context.Background(), "egs-gpu", metav1.GetOptions{})
	if err != nil {
		return -1, -1
	}
	a, b := q.Spec.Hard["requests.nvidia.com/gpu"], q.Status.Hard["requests.nvidia.com/gpu"]
	if _, ok := q.Status.Hard["requests.nvidia.com/gpu"]; !ok {
		return a.Value(), -1
	}
	return a.Value(), b.Value()
}

// eventuallyLong is eventually with room for the controller manager's work.
func eventuallyLong(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeClean(n *corev1.Node) error {
	if n.Labels["egs.io/workspace"] != "" || n.Labels["egs.io/gpr"] != "" || workspaceTaints(n) != 0 {
		return fmt.Errorf("node %s handed over: labels %v taints %v", n.Name, n.Labels, n.Spec.Taints)
	}
	return nil
}

// TestKubernetes runs the provisioner against two real API servers (kube-a,
// kube-b) and proves the acceptance list of the Kubernetes issue: inventory
// from real Nodes, workspace namespaces with RBAC and quota, a kubeconfig that
// works in the workspace's namespaces only, node hand-over that pins the
// workspace's pods, release with evictions (PodDisruptionBudget respected up
// to the deadline), multi-cluster isolation and workspace deletion.
func TestKubernetes(t *testing.T) {
	planes := kubeClusters(t)
	a, b := clientOf(t, restConfig(t, planes["kube-a"].KubeconfigYAML())), clientOf(t, restConfig(t, planes["kube-b"].KubeconfigYAML()))
	ctx := context.Background()
	createNodes(t, a,
		gpuNode("a-gpu-0", 8), gpuNode("a-gpu-1", 8),
		gpuNode("a-off", 8, func(n *corev1.Node) { n.Labels["egs.io/managed"] = "false" }),
		gpuNode("a-sick", 4, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }),
		gpuNode("a-cpu", 0, func(n *corev1.Node) { delete(n.Status.Capacity, "nvidia.com/gpu") }))
	createNodes(t, b, gpuNode("b-gpu-0", 8))
	// Someone else's namespace, which workspace team-c also names.
	if _, err := a.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	_, nc, js := natstest.RunJetStream(t)
	wsKV, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces})
	if err != nil {
		t.Fatal(err)
	}
	putWorkspace(t, wsKV, "team-a", []string{"kube-a", "kube-b"}, []string{"team-a", "team-a-dev"})
	putWorkspace(t, wsKV, "team-b", []string{"kube-a"}, []string{"team-b"})
	putWorkspace(t, wsKV, "team-c", []string{"kube-a"}, []string{"team-c"})
	stop := runProvisioner(t, nc, planes, nil, nil)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("provisioner Run = %v, want nil", err)
		}
	}()
	h := &harness{nc: nc, js: js, pub: bus.NewPublisher(js), kcs: map[string]kubernetesNodes{
		"kube-a": a.CoreV1().Nodes(), "kube-b": b.CoreV1().Nodes()}}

	t.Run("inventory from real nodes", func(t *testing.T) {
		inv, err := rpc.Call[rpc.Inventory](ctx, nc, events.RPCInventoryList, rpc.InventoryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]events.Node{}
		for _, n := range inv.Nodes {
			got[n.Cluster+"/"+n.Name] = n
		}
		if _, ok := got["kube-a/a-cpu"]; ok || len(got) != 5 {
			t.Fatalf("inventory = %v, want the 5 GPU nodes", keys(got))
		}
		n := got["kube-a/a-gpu-0"]
		if n.GPUCount != 8 || n.GPUProduct != "NVIDIA-H100-80GB-HBM3" || n.GPUMemoryGB != 80 || n.InstanceType != "p5.48xlarge" ||
			!n.Managed || !n.Healthy() || n.CloudProvider != "aws" || n.Region != "us-east-1" {
			t.Errorf("a-gpu-0 = %+v", n)
		}
		if got["kube-a/a-off"].Managed || got["kube-a/a-sick"].Ready || !got["kube-b/b-gpu-0"].Healthy() {
			t.Errorf("a-off managed=%v, a-sick ready=%v, b-gpu-0 healthy=%v",
				got["kube-a/a-off"].Managed, got["kube-a/a-sick"].Ready, got["kube-b/b-gpu-0"].Healthy())
		}
	})

	t.Run("node added, cordoned and deleted: inventory follows within 2 s", func(t *testing.T) {
		start := time.Now()
		createNodes(t, a, gpuNode("a-new", 2))
		waitNode(t, nc, "kube-a", "a-new", func(n *events.Node) bool { return n != nil && n.GPUCount == 2 })
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("new node took %s to appear", d)
		}
		patch := []byte(`{"spec":{"unschedulable":true}}`)
		if _, err := a.CoreV1().Nodes().Patch(ctx, "a-new", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNode(t, nc, "kube-a", "a-new", func(n *events.Node) bool { return n != nil && n.Unschedulable && !n.Healthy() })
		if err := a.CoreV1().Nodes().Delete(ctx, "a-new", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNode(t, nc, "kube-a", "a-new", func(n *events.Node) bool { return n == nil })
	})

	t.Run("workspace objects on each of its clusters", func(t *testing.T) {
		for _, c := range []struct {
			kc  kubernetes.Interface
			nss []string
		}{{a, []string{"team-a", "team-a-dev", "team-b"}}, {b, []string{"team-a", "team-a-dev"}}} {
			for _, ns := range c.nss {
				eventuallyLong(t, "namespace "+ns, func() error {
					n, err := c.kc.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
					if err != nil {
						return err
					}
					if n.Labels["egs.io/managed-by"] != "egs" || n.Annotations["scheduler.alpha.kubernetes.io/node-selector"] == "" {
						return fmt.Errorf("namespace %s: labels %v annotations %v", ns, n.Labels, n.Annotations)
					}
					if _, err := c.kc.RbacV1().RoleBindings(ns).Get(ctx, "egs-workspace-edit", metav1.GetOptions{}); err != nil {
						return err
					}
					if spec, _ := quotaHard(t, c.kc, ns); spec != 0 {
						return fmt.Errorf("quota of %s = %d, want 0", ns, spec)
					}
					return nil
				})
			}
		}
		if _, err := b.CoreV1().Namespaces().Get(ctx, "team-b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("team-b on kube-b: %v, want not found (team-b spans kube-a only)", err)
		}
		if _, err := a.CoreV1().ServiceAccounts("team-a").Get(ctx, "egs-workspace", metav1.GetOptions{}); err != nil {
			t.Errorf("service account: %v", err)
		}
	})

	t.Run("a namespace EGS did not create is left alone", func(t *testing.T) {
		ns, err := a.CoreV1().Namespaces().Get(ctx, "team-c", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ns.Labels) > 1 || len(ns.Annotations) != 0 { // kubernetes.io/metadata.name only
			t.Errorf("foreign namespace changed: labels %v annotations %v", ns.Labels, ns.Annotations)
		}
		_, err = rpc.Call[rpc.KubeConfig](ctx, nc, events.RPCKubeConfig, rpc.KubeConfigRequest{Workspace: "team-c", Cluster: "kube-a"})
		if rpc.CodeOf(err) != rpc.Conflict {
			t.Errorf("kubeconfig of team-c = %v, want CONFLICT", err)
		}
	})

	kcA := userClient(t, nc, "team-a", "kube-a", "team-a")

	t.Run("kubeconfig: own namespaces only", func(t *testing.T) {
		for _, ns := range []string{"team-a", "team-a-dev"} {
			if _, err := createPod(ctx, kcA, ns, pod("cpu-"+ns, "", 0, nil)); err != nil {
				t.Errorf("create pod in own namespace %s: %v", ns, err)
			}
		}
		for _, ns := range []string{"default", "team-b"} {
			_, err := kcA.CoreV1().Pods(ns).Create(ctx, pod("intruder", "", 0, nil), metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) {
				t.Errorf("create pod in %s = %v, want forbidden", ns, err)
			}
		}
		_, err := kcA.CoreV1().ResourceQuotas("team-a").Update(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "egs-gpu"}}, metav1.UpdateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("update own quota = %v, want forbidden", err)
		}
		if _, err := kcA.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list nodes = %v, want forbidden", err)
		}
	})

	t.Run("no GPUs held: a GPU pod is over quota", func(t *testing.T) {
		eventuallyLong(t, "quota status", func() error {
			if _, status := quotaHard(t, a, "team-a"); status != 0 {
				return fmt.Errorf("status hard = %d", status)
			}
			return nil
		})
		_, err := createPod(ctx, kcA, "team-a", pod("gpu-early", "", 1, nil))
		if !apierrors.IsForbidden(err) || !containsAny(err.Error(), "exceeded quota") {
			t.Errorf("GPU pod without GPUs = %v, want forbidden: exceeded quota", err)
		}
	})

	apply := events.ProvisionCommand{GPRID: "gpr-1", Workspace: "team-a", Cluster: "kube-a", Nodes: []string{"a-gpu-0"}, Seq: 1}
	t.Run("hand-over: nodes labelled and tainted, quota raised, pods pinned", func(t *testing.T) {
		before := nodeVersions(t, b)
		h.send(t, events.CommandApply, apply)
		h.drained(t)
		if got := h.results(t, "team-a", "gpr-1", events.ProvisionApplied); len(got) != 1 {
			t.Fatalf("applied = %+v, want one (failed: %+v)", got, h.results(t, "team-a", "gpr-1", events.ProvisionFailed))
		}
		n := h.node(t, "kube-a", "a-gpu-0")
		if n.Labels["egs.io/workspace"] != "team-a" || n.Labels["egs.io/gpr"] != "gpr-1" || workspaceTaints(n) != 1 {
			t.Fatalf("a-gpu-0: labels %v taints %v", n.Labels, n.Spec.Taints)
		}
		if err := nodeClean(h.node(t, "kube-a", "a-gpu-1")); err != nil {
			t.Error(err)
		}
		if after := nodeVersions(t, b); !maps.Equal(before, after) {
			t.Errorf("a GPR on kube-a changed kube-b's nodes: %v -> %v", before, after)
		}
		for _, ns := range []string{"team-a", "team-a-dev"} {
			eventuallyLong(t, "quota of "+ns+" at 8", func() error {
				if spec, status := quotaHard(t, a, ns); spec != 8 || status != 8 {
					return fmt.Errorf("quota spec %d status %d", spec, status)
				}
				return nil
			})
		}
		if spec, _ := quotaHard(t, b, "team-a"); spec != 0 {
			t.Errorf("quota of team-a on kube-b = %d, want 0", spec)
		}
		_, err := createPod(ctx, kcA, "team-a", pod("too-big", "", 9, nil))
		if !apierrors.IsForbidden(err) || !containsAny(err.Error(), "exceeded quota") {
			t.Errorf("pod asking 9 GPUs with 8 held = %v, want forbidden: exceeded quota", err)
		}
		p, err := createPod(ctx, kcA, "team-a", pod("train", "a-gpu-0", 4, map[string]string{"app": "train"}))
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeSelector["egs.io/workspace"] != "team-a" || !hasToleration(p, "team-a") {
			t.Errorf("pod got node selector %v tolerations %v, want the workspace's", p.Spec.NodeSelector, p.Spec.Tolerations)
		}
		if _, err := createPod(ctx, kcA, "team-a-dev", pod("guarded", "a-gpu-0", 2, map[string]string{"app": "guarded"})); err != nil {
			t.Fatal(err)
		}
		running(t, a, "team-a", "train")
		running(t, a, "team-a-dev", "guarded")
		sneaky := pod("sneaky", "", 0, nil)
		sneaky.Spec.Tolerations = []corev1.Toleration{{Key: "egs.io/workspace", Operator: corev1.TolerationOpEqual, Value: "team-b", Effect: corev1.TaintEffectNoSchedule}}
		if _, err := createPod(ctx, kcA, "team-a", sneaky); err == nil {
			t.Error("a pod tolerating another workspace's taint was admitted")
		}
		// A budget that allows no disruption protects "guarded" until the deadline.
		zero := intstr.FromInt32(0)
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "guard"}, Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}}}
		if _, err := kcA.PolicyV1().PodDisruptionBudgets("team-a-dev").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("multi-cluster: a GPR on kube-b touches only kube-b", func(t *testing.T) {
		before := nodeVersions(t, a)
		h.send(t, events.CommandApply, events.ProvisionCommand{GPRID: "gpr-b", Workspace: "team-a", Cluster: "kube-b", Nodes: []string{"b-gpu-0"}, Seq: 1})
		h.drained(t)
		if got := h.results(t, "team-a", "gpr-b", events.ProvisionApplied); len(got) != 1 {
			t.Fatalf("applied on kube-b = %+v", got)
		}
		if n := h.node(t, "kube-b", "b-gpu-0"); n.Labels["egs.io/gpr"] != "gpr-b" || workspaceTaints(n) != 1 {
			t.Errorf("b-gpu-0: labels %v taints %v", n.Labels, n.Spec.Taints)
		}
		if after := nodeVersions(t, a); !maps.Equal(before, after) {
			t.Errorf("a GPR on kube-b changed kube-a's nodes: %v -> %v", before, after)
		}
		if spec, _ := quotaHard(t, b, "team-a"); spec != 8 {
			t.Errorf("quota on kube-b = %d, want 8", spec)
		}
		if spec, _ := quotaHard(t, a, "team-a"); spec != 8 {
			t.Errorf("quota on kube-a = %d, want still 8", spec)
		}
		kcB := userClient(t, nc, "team-a", "kube-b", "team-a")
		if _, err := createPod(ctx, kcB, "team-a", pod("on-b", "", 8, nil)); err != nil {
			eventuallyLong(t, "kube-b quota status", func() error {
				_, err := createPod(ctx, kcB, "team-a", pod("on-b", "", 8, nil))
				return err
			})
		}
	})

	t.Run("release: pods evicted (budget honoured until the deadline), nodes clean, quota lowered", func(t *testing.T) {
		remove := apply
		remove.Seq = 2
		start := time.Now()
		h.send(t, events.CommandRemove, remove)
		h.drained(t)
		if got := h.results(t, "team-a", "gpr-1", events.ProvisionRemoved); len(got) != 1 {
			t.Fatalf("removed = %+v", got)
		}
		if d := time.Since(start); d < 3*time.Second {
			t.Errorf("release took %s: the budget should have held it up for the 3 s deadline", d)
		}
		if err := nodeClean(h.node(t, "kube-a", "a-gpu-0")); err != nil {
			t.Error(err)
		}
		for ns, name := range map[string]string{"team-a": "train", "team-a-dev": "guarded"} {
			p, err := a.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil && p.DeletionTimestamp == nil {
				t.Errorf("pod %s/%s still on the released node", ns, name)
			}
		}
		if _, err := a.CoreV1().Pods("team-a").Get(ctx, "cpu-team-a", metav1.GetOptions{}); err != nil {
			t.Errorf("a workspace pod on no released node was touched: %v", err)
		}
		if spec, _ := quotaHard(t, a, "team-a"); spec != 0 {
			t.Errorf("quota after release = %d, want 0", spec)
		}
		if n := h.node(t, "kube-b", "b-gpu-0"); n.Labels["egs.io/gpr"] != "gpr-b" {
			t.Errorf("releasing kube-a's GPR touched kube-b: %v", n.Labels)
		}
	})

	t.Run("workspace deleted: its namespaces go, others stay", func(t *testing.T) {
		if err := wsKV.Delete(ctx, "team-b"); err != nil {
			t.Fatal(err)
		}
		eventuallyLong(t, "team-b deleted", func() error {
			n, err := a.CoreV1().Namespaces().Get(ctx, "team-b", metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && n.DeletionTimestamp != nil) {
				return nil
			}
			return fmt.Errorf("namespace team-b: %v", err)
		})
		for _, ns := range []string{"team-a", "team-c", "default"} {
			if n, err := a.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil || n.DeletionTimestamp != nil {
				t.Errorf("namespace %s: %v", ns, err)
			}
		}
	})
}

// running reports the pod Running and Ready, as its kubelet would (pending
// pods are evicted regardless of budgets).
func running(t *testing.T, kc kubernetes.Interface, ns, name string) {
	t.Helper()
	p, err := kc.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := kc.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// userClient downloads the workspace's kubeconfig for cluster and checks its
// context before returning a client built from it.
func userClient(t *testing.T, nc *nats.Conn, ws, cluster, wantNamespace string) kubernetes.Interface {
	t.Helper()
	kc, err := rpc.Call[rpc.KubeConfig](context.Background(), nc, events.RPCKubeConfig, rpc.KubeConfigRequest{Workspace: ws, Cluster: cluster})
	if err != nil {
		t.Fatalf("kubeconfig of %s on %s: %v", ws, cluster, err)
	}
	raw, err := clientcmd.Load([]byte(kc.KubeConfig))
	if err != nil {
		t.Fatal(err)
	}
	cur := raw.Contexts[raw.CurrentContext]
	if raw.CurrentContext != ws+"@"+cluster || cur == nil || cur.Namespace != wantNamespace || raw.AuthInfos[cur.AuthInfo].Token == "" {
		t.Fatalf("kubeconfig context %q %+v", raw.CurrentContext, cur)
	}
	return clientOf(t, restConfig(t, []byte(kc.KubeConfig)))
}

// waitNode waits until the inventory entry of cluster/name satisfies ok (nil: absent).
func waitNode(t *testing.T, nc *nats.Conn, cluster, name string, ok func(*events.Node) bool) {
	t.Helper()
	eventuallyLong(t, "inventory of "+name, func() error {
		inv, err := rpc.Call[rpc.Inventory](context.Background(), nc, events.RPCInventoryList, rpc.InventoryRequest{Clusters: []string{cluster}})
		if err != nil {
			return err
		}
		var found *events.Node
		for i := range inv.Nodes {
			if inv.Nodes[i].Name == name {
				found = &inv.Nodes[i]
			}
		}
		if !ok(found) {
			return errors.New("not yet")
		}
		return nil
	})
}

func nodeVersions(t *testing.T, kc kubernetes.Interface) map[string]string {
	t.Helper()
	list, err := kc.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range list.Items {
		out[n.Name] = fmt.Sprint(n.Labels) + fmt.Sprint(n.Spec.Taints)
	}
	return out
}

func keys(m map[string]events.Node) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestKubernetesCrash kills a provisioner between labelling a GPR's node and
// reporting it (its connection closes, it never acks), starts another, and
// shows one consistent result: one applied report, the node labelled and
// tainted once, the quota counting it once.
func TestKubernetesCrash(t *testing.T) {
	planes := kubeClusters(t)
	one := map[string]*kubetest.ControlPlane{"kube-a": planes["kube-a"]}
	a := clientOf(t, restConfig(t, planes["kube-a"].KubeconfigYAML()))
	ctx := context.Background()
	createNodes(t, a, gpuNode("a-crash-0", 8))
	srv, nc, js := natstest.RunJetStream(t)
	wsKV, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketWorkspaces})
	if err != nil {
		t.Fatal(err)
	}
	putWorkspace(t, wsKV, "team-x", []string{"kube-a"}, []string{"team-x"})
	fast := func(c *service.Config) { c.AckWait, c.HandlerTimeout = 3*time.Second, 2*time.Second }

	nc1, _ := natstest.Connect(t, srv)
	crashed := make(chan struct{})
	stop1 := runProvisioner(t, nc1, one, fast, func(point string) {
		if point == service.CrashAfterApply {
			close(crashed)
			nc1.Close() // the process is gone: no report, no ack
			panic("killed")
		}
	})
	h := &harness{nc: nc, js: js, pub: bus.NewPublisher(js), kcs: map[string]kubernetesNodes{"kube-a": a.CoreV1().Nodes()}}
	h.send(t, events.CommandApply, events.ProvisionCommand{GPRID: "gpr-x", Workspace: "team-x", Cluster: "kube-a", Nodes: []string{"a-crash-0"}, Seq: 1})
	select {
	case <-crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first provisioner never reached the crash point")
	}
	_ = stop1() // its connection is closed: Run may report that
	if n := h.node(t, "kube-a", "a-crash-0"); n.Labels["egs.io/gpr"] != "gpr-x" {
		t.Fatalf("the crash came before labelling: %v", n.Labels)
	}
	if got := h.results(t, "team-x", "gpr-x", events.ProvisionApplied); len(got) != 0 {
		t.Fatalf("applied reported before the crash: %+v", got)
	}

	nc2, _ := natstest.Connect(t, srv)
	runProvisioner(t, nc2, one, fast, nil)
	h.drained(t)
	if got := h.results(t, "team-x", "gpr-x", events.ProvisionApplied); len(got) != 1 {
		t.Errorf("applied after restart = %+v, want exactly one", got)
	}
	n := h.node(t, "kube-a", "a-crash-0")
	if n.Labels["egs.io/workspace"] != "team-x" || n.Labels["egs.io/gpr"] != "gpr-x" || workspaceTaints(n) != 1 {
		t.Errorf("node after restart: labels %v taints %v", n.Labels, n.Spec.Taints)
	}
	if spec, _ := quotaHard(t, a, "team-x"); spec != 8 {
		t.Errorf("quota after restart = %d, want 8", spec)
	}
}

// tokenKubeconfig renders a kubeconfig for rc (host, CA, bearer token).
func tokenKubeconfig(t *testing.T, name string, rc *rest.Config) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: rc.BearerToken}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func clusterState(t *testing.T, nc *nats.Conn, name string) (events.Cluster, bool) {
	t.Helper()
	l, err := rpc.Call[rpc.ClusterList](context.Background(), nc, events.RPCClusterList, rpc.ClusterListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range l.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return events.Cluster{}, false
}

// TestKubernetesRegistration registers kube-b at run time next to the
// configured kube-a: its kubeconfig is sealed at rest, its nodes enter the
// inventory without a restart, an outage of its API server marks it
// unhealthy until it answers again, a restarted provisioner serves it from
// the bucket, and unregistering it drops its nodes.
func TestKubernetesRegistration(t *testing.T) {
	planes := kubeClusters(t)
	ctx := context.Background()
	b := clientOf(t, restConfig(t, planes["kube-b"].KubeconfigYAML()))
	createNodes(t, b, gpuNode("b-reg-0", 4))
	srv, nc, js := natstest.RunJetStream(t)
	keyFile := t.TempDir() + "/credentials.key"
	tune := func(c *service.Config) { c.CredentialsKeyFile, c.HealthInterval = keyFile, 200*time.Millisecond }
	only := map[string]*kubetest.ControlPlane{"kube-a": planes["kube-a"]}
	nc1, _ := natstest.Connect(t, srv)
	stop := runProvisioner(t, nc1, only, tune, nil)

	bIdentity := provisionerIdentity(t, planes["kube-b"])
	kubeconfig := tokenKubeconfig(t, "kube-b", bIdentity)
	admin := rpc.Caller{Subject: "test", Role: "admin"}
	for name, tc := range map[string]struct {
		req  rpc.ClusterRegisterRequest
		want rpc.Code
	}{
		"an Editor":        {req: rpc.ClusterRegisterRequest{Caller: rpc.Caller{Role: "Editor", Workspace: "ws"}, Name: "kube-b", KubeConfig: kubeconfig}, want: rpc.Forbidden},
		"bad name":         {req: rpc.ClusterRegisterRequest{Caller: admin, Name: "Kube B", KubeConfig: kubeconfig}, want: rpc.BadRequest},
		"configured":       {req: rpc.ClusterRegisterRequest{Caller: admin, Name: "kube-a", KubeConfig: kubeconfig}, want: rpc.Conflict},
		"not a kubeconfig": {req: rpc.ClusterRegisterRequest{Caller: admin, Name: "kube-b", KubeConfig: "{"}, want: rpc.BadRequest},
	} {
		if _, err := rpc.Call[events.Cluster](ctx, nc, events.RPCClusterRegister, tc.req); rpc.CodeOf(err) != tc.want {
			t.Errorf("%s: register = %v, want %s", name, err, tc.want)
		}
	}
	if _, ok := clusterState(t, nc, "kube-b"); ok {
		t.Fatal("a refused registration was stored")
	}
	if _, err := rpc.Call[events.Cluster](ctx, nc, events.RPCClusterRegister,
		rpc.ClusterRegisterRequest{Caller: admin, Name: "kube-b", KubeConfig: kubeconfig}); err != nil {
		t.Fatal(err)
	}
	waitNode(t, nc, "kube-b", "b-reg-0", func(n *events.Node) bool { return n != nil && n.GPUCount == 4 })
	if c, ok := clusterState(t, nc, "kube-b"); !ok || !c.Registered || c.Unhealthy {
		t.Errorf("kube-b in the cluster list = %+v (present %v), want registered and healthy", c, ok)
	}
	creds, err := js.KeyValue(ctx, events.BucketClusterCredentials)
	if err != nil {
		t.Fatal(err)
	}
	e, err := creds.Get(ctx, "kube-b")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), bIdentity.BearerToken) || strings.Contains(string(e.Value()), planes["kube-b"].Host) {
		t.Error("the stored registration holds the token or the server in clear")
	}

	t.Run("outage: unhealthy until the API server answers again", func(t *testing.T) {
		planes["kube-b"].StopAPIServer()
		eventuallyLong(t, "kube-b unhealthy", func() error {
			if c, _ := clusterState(t, nc, "kube-b"); !c.Unhealthy || c.Error == "" {
				return fmt.Errorf("kube-b = %+v", c)
			}
			return nil
		})
		if err := planes["kube-b"].StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		eventuallyLong(t, "kube-b healthy", func() error {
			if c, _ := clusterState(t, nc, "kube-b"); c.Unhealthy {
				return fmt.Errorf("kube-b = %+v", c)
			}
			return nil
		})
		createNodes(t, b, gpuNode("b-reg-1", 2))
		waitNode(t, nc, "kube-b", "b-reg-1", func(n *events.Node) bool { return n != nil })
	})

	outer := t
	t.Run("restart: the registration is served from the bucket", func(t *testing.T) {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		nc2, _ := natstest.Connect(outer, srv)
		stop = runProvisioner(outer, nc2, only, tune, nil)
		waitNode(t, nc, "kube-b", "b-reg-0", func(n *events.Node) bool { return n != nil })
		if err := b.CoreV1().Nodes().Delete(ctx, "b-reg-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitNode(t, nc, "kube-b", "b-reg-1", func(n *events.Node) bool { return n == nil })
	})

	t.Run("unregister: its nodes leave the inventory", func(t *testing.T) {
		if _, err := rpc.Call[events.Cluster](ctx, nc, events.RPCClusterUnregister, rpc.ClusterRef{Caller: admin, Name: "kube-b"}); err != nil {
			t.Fatal(err)
		}
		waitNode(t, nc, "kube-b", "b-reg-0", func(n *events.Node) bool { return n == nil })
		eventuallyLong(t, "kube-b gone from the list", func() error {
			if _, ok := clusterState(t, nc, "kube-b"); ok {
				return errors.New("still listed")
			}
			return nil
		})
		if _, err := rpc.Call[events.Cluster](ctx, nc, events.RPCClusterUnregister, rpc.ClusterRef{Caller: admin, Name: "kube-b"}); rpc.CodeOf(err) != rpc.NotFound {
			t.Errorf("unregister twice = %v, want NOT_FOUND", err)
		}
	})
	if err := stop(); err != nil {
		t.Errorf("provisioner Run = %v", err)
	}
}
