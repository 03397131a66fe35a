package podindex_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/open-egs/egs/libs/testkit/kubetest"
	"github.com/open-egs/egs/services/nodeagent/internal/gpu"
	"github.com/open-egs/egs/services/nodeagent/internal/podindex"
)

// agentClient is a client with the node agent's identity: a ServiceAccount
// bound to deploy/kubernetes/nodeagent-clusterrole.yaml and nothing else.
func agentClient(t *testing.T, c *kubetest.ControlPlane, admin kubernetes.Interface) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	b, err := os.ReadFile("../../../../deploy/kubernetes/nodeagent-clusterrole.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("deploy ClusterRole: %v", err)
	}
	must := func(what string, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	must("cluster role", err)
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "egs-system"}}, metav1.CreateOptions{})
	must("namespace", err)
	_, err = admin.CoreV1().ServiceAccounts("egs-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "egs-nodeagent"}}, metav1.CreateOptions{})
	must("service account", err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "egs-nodeagent"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "egs-nodeagent", Namespace: "egs-system"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
	}, metav1.CreateOptions{})
	must("binding", err)
	return tokenClient(t, c, admin, "egs-system", "egs-nodeagent")
}

// tokenClient is a client with the token of ServiceAccount ns/name.
func tokenClient(t *testing.T, c *kubetest.ControlPlane, admin kubernetes.Interface, ns, name string) kubernetes.Interface {
	t.Helper()
	secs := int64(3600)
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token of %s/%s: %v", ns, name, err)
	}
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: c.Host, BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// controlPlane starts a real API server (no controller manager) for the
// test and returns it with an admin client.
func controlPlane(ctx context.Context, t *testing.T) (*kubetest.ControlPlane, kubernetes.Interface) {
	t.Helper()
	c, err := kubetest.Start(ctx, kubetest.Options{Dir: t.TempDir(), NoControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(c.KubeconfigYAML())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c, admin
}

func pod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
}

// A GPU process's pod: its UID from a cgroup file laid out as the kubelet's
// systemd driver does, its namespace and name from the API server, watched
// with the agent's role; pods of other nodes are not seen.
func TestProcessesMapToPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, admin := controlPlane(ctx, t)
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// No controller manager here: the ServiceAccount admission wants the default account.
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mine, err := admin.CoreV1().Pods("team-a").Create(ctx, pod("team-a", "train-0", "gpu-1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin.CoreV1().Pods("team-b").Create(ctx, pod("team-b", "train-0", "gpu-2"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	idx := podindex.Start(agentClient(t, c, admin), "gpu-1", slog.New(slog.DiscardHandler))
	defer idx.Stop()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if !idx.WaitSynced(sctx) {
		t.Fatal("pod watch not synced within 30s")
	}
	if ns, name := idx.Lookup(string(mine.UID)); ns != "team-a" || name != "train-0" {
		t.Errorf("Lookup(own pod) = %q/%q, want team-a/train-0", ns, name)
	}
	if ns, name := idx.Lookup(string(other.UID)); ns != "" || name != "" {
		t.Errorf("Lookup(pod of another node) = %q/%q, want nothing", ns, name)
	}

	// A pod bound later is seen through the watch; its process maps to it.
	late, err := admin.CoreV1().Pods("team-b").Create(ctx, pod("team-b", "eval-1", "gpu-1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "4242"), 0o755); err != nil {
		t.Fatal(err)
	}
	cgroup := "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
		strings.ReplaceAll(string(late.UID), "-", "_") + ".slice/cri-containerd-0123abcd.scope\n"
	if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte(cgroup), 0o644); err != nil {
		t.Fatal(err)
	}
	resolve := gpu.ProcPods(proc, idx.Lookup)
	want := gpu.Pod{UID: string(late.UID), Namespace: "team-b", Name: "eval-1"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok := resolve(4242)
		if ok && got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process 4242 maps to %+v (%v), want %+v", got, ok, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := resolve(4243); ok {
		t.Error("a process without a cgroup file maps to a pod")
	}

	// An account without the role: the agent says why, and names no pod.
	if _, err := admin.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	var mu sync.Mutex
	denied := podindex.Start(tokenClient(t, c, admin, "team-a", "nobody"), "gpu-1",
		slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil)))
	defer denied.Stop()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if denied.WaitSynced(wctx) {
		t.Error("pods listed without the role")
	}
	if ns, name := denied.Lookup(string(mine.UID)); ns != "" || name != "" {
		t.Errorf("Lookup without the role = %q/%q, want nothing", ns, name)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "forbidden") || !strings.Contains(logged.String(), "node=gpu-1") {
		t.Errorf("log without the role = %q, want the API server's refusal and the node", logged.String())
	}
}

// lockedWriter serialises writes from the watch's goroutine and the test's reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
