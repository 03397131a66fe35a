package podindex_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The node agent's manifests are accepted by a real API server (server-side
// dry run: validation and defaulting, nothing stored), and the DaemonSet
// runs the agent with the settings the docs promise.
func TestDeployManifests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, cs := controlPlane(ctx, t)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "egs-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	var ds appsv1.DaemonSet
	kinds := map[string]bool{}
	for _, file := range []string{"nodeagent-clusterrole.yaml", "nodeagent-daemonset.yaml"} {
		b, err := os.ReadFile("../../../../deploy/kubernetes/" + file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			kinds[meta.Kind] = true
			switch meta.Kind {
			case "ClusterRole":
				var o rbacv1.ClusterRole
				decode(t, file, doc, &o)
				_, err = cs.RbacV1().ClusterRoles().Create(ctx, &o, dry)
			case "ClusterRoleBinding":
				var o rbacv1.ClusterRoleBinding
				decode(t, file, doc, &o)
				_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &o, dry)
			case "ServiceAccount":
				var o corev1.ServiceAccount
				decode(t, file, doc, &o)
				_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, &o, dry)
			case "DaemonSet":
				decode(t, file, doc, &ds)
				_, err = cs.AppsV1().DaemonSets(ds.Namespace).Create(ctx, &ds, dry)
			default:
				t.Fatalf("%s: unexpected kind %q", file, meta.Kind)
			}
			if err != nil {
				t.Errorf("%s %s: %v", file, meta.Kind, err)
			}
		}
	}
	for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "ServiceAccount", "DaemonSet"} {
		if !kinds[k] {
			t.Errorf("no %s in the manifests", k)
		}
	}
	pod := ds.Spec.Template.Spec
	env := map[string]string{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["EGS_NODEAGENT_NODE"] != "fieldRef:spec.nodeName" || env["EGS_NODEAGENT_CLUSTER"] == "" || env["EGS_NODEAGENT_NATS_URL"] == "" {
		t.Errorf("agent environment = %v", env)
	}
	if pod.ServiceAccountName != "egs-nodeagent" || !strings.Contains(strings.Join(pod.Containers[0].Args, " "), "-proc.root /host/proc") ||
		len(pod.Volumes) != 1 || pod.Volumes[0].HostPath == nil || pod.Volumes[0].HostPath.Path != "/proc" ||
		!pod.Containers[0].VolumeMounts[0].ReadOnly {
		t.Errorf("pod spec: account %q, args %v, volumes %+v", pod.ServiceAccountName, pod.Containers[0].Args, pod.Volumes)
	}
}

func decode(t *testing.T, file, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
