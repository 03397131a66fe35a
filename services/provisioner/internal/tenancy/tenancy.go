// Package tenancy keeps a workspace's objects on one cluster: its namespaces
// (annotated so that the PodNodeSelector and PodTolerationRestriction
// admission plugins pin its pods to its nodes), a ServiceAccount in the first
// namespace, an explicit Role and RoleBinding with edit rights in each
// namespace, and a ResourceQuota capping requests.nvidia.com/gpu at the GPUs
// the workspace holds on the cluster. Every object carries the label
// egs.io/managed-by=egs; objects without it are never changed or deleted.
//
// Ensure and Delete are level-based and idempotent: they compare what is with
// what should be and change only the difference, so repeating them, or
// running them after a crash at any point, converges.
package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/open-egs/egs/services/provisioner/internal/inventory"
)

// Labels, annotations and names of the objects the provisioner creates.
const (
	// LabelManagedBy marks every object the provisioner created (value ManagedBy).
	LabelManagedBy = "egs.io/managed-by"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "egs"
	// LabelWorkspace names the workspace a namespace belongs to.
	LabelWorkspace = inventory.LabelWorkspace

	// AnnotationNodeSelector is read by the PodNodeSelector admission plugin.
	AnnotationNodeSelector = "scheduler.alpha.kubernetes.io/node-selector"
	// AnnotationDefaultTolerations is read by PodTolerationRestriction: added to every pod.
	AnnotationDefaultTolerations = "scheduler.alpha.kubernetes.io/defaultTolerations"
	// AnnotationTolerationsWhitelist is read by PodTolerationRestriction: the only tolerations allowed.
	AnnotationTolerationsWhitelist = "scheduler.alpha.kubernetes.io/tolerationsWhitelist"

	// ServiceAccountName is the workspace's ServiceAccount, in its first namespace.
	ServiceAccountName = "egs-workspace"
	// RoleName names the Role and the RoleBinding in each namespace.
	RoleName = "egs-workspace-edit"
	// QuotaName is the ResourceQuota in each namespace.
	QuotaName = "egs-gpu"
	// QuotaResource is the quota's only resource.
	QuotaResource corev1.ResourceName = "requests.nvidia.com/gpu"
)

// ErrForeign is returned when an object the provisioner would create already
// exists without its label (or belongs to another workspace): it is left
// alone and the workspace cannot be set up there.
var ErrForeign = errors.New("exists and is not managed by EGS for this workspace")

// Spec is what a workspace should have on one cluster.
type Spec struct {
	Workspace  string
	Namespaces []string // the first holds the ServiceAccount
	GPUs       int64    // the quota: GPUs of the nodes handed to the workspace on the cluster
}

// Selector selects the objects the provisioner created.
func Selector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
}

// WorkspaceSelector selects the namespaces the provisioner created for ws.
func WorkspaceSelector(ws string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelWorkspace: ws})
}

func ownLabels(ws string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelWorkspace: ws}
}

// owned reports whether meta carries the provisioner's labels for ws.
func owned(meta metav1.Object, ws string) bool {
	l := meta.GetLabels()
	return l[LabelManagedBy] == ManagedBy && l[LabelWorkspace] == ws
}

// Toleration is the toleration of the workspace's node taint.
func Toleration(ws string) corev1.Toleration {
	return corev1.Toleration{Key: inventory.TaintWorkspace, Operator: corev1.TolerationOpEqual, Value: ws,
		Effect: corev1.TaintEffectNoSchedule}
}

// Whitelist is every toleration a workspace pod may carry: its own node
// taint, the NoExecute tolerations DefaultTolerationSeconds adds, and the
// nvidia.com/gpu taint GPU operators put on GPU nodes. Other workspaces'
// taints are not in it, so no pod can tolerate its way onto their nodes.
func Whitelist(ws string) []corev1.Toleration {
	return []corev1.Toleration{
		Toleration(ws),
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: string(inventory.ResourceGPU), Operator: corev1.TolerationOpExists},
	}
}

// NamespaceAnnotations are the admission plugins' annotations of ws's namespaces.
func NamespaceAnnotations(ws string) map[string]string {
	defaults, _ := json.Marshal([]corev1.Toleration{Toleration(ws)}) // cannot fail
	whitelist, _ := json.Marshal(Whitelist(ws))
	return map[string]string{
		AnnotationNodeSelector:         inventory.LabelWorkspace + "=" + ws,
		AnnotationDefaultTolerations:   string(defaults),
		AnnotationTolerationsWhitelist: string(whitelist),
	}
}

// Rules are the workspace's rights in each of its namespaces: what the
// aggregated "edit" ClusterRole grants for workloads, spelled out (a cluster
// without kube-controller-manager's aggregation has an empty "edit"), minus
// anything that would let it widen its own limits: quotas and limit ranges
// are read-only, and no RBAC, namespaces or service accounts.
func Rules() []rbacv1.PolicyRule {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	read := []string{"get", "list", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Verbs: all, Resources: []string{
			"pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "pods/log", "pods/eviction",
			"services", "services/proxy", "endpoints", "configmaps", "secrets", "persistentvolumeclaims",
			"replicationcontrollers", "replicationcontrollers/scale"}},
		{APIGroups: []string{""}, Verbs: read, Resources: []string{
			"events", "resourcequotas", "resourcequotas/status", "limitranges", "pods/status", "serviceaccounts"}},
		{APIGroups: []string{"apps"}, Verbs: all, Resources: []string{
			"deployments", "deployments/scale", "replicasets", "replicasets/scale", "statefulsets",
			"statefulsets/scale", "daemonsets", "controllerrevisions"}},
		{APIGroups: []string{"batch"}, Verbs: all, Resources: []string{"jobs", "cronjobs"}},
		{APIGroups: []string{"autoscaling"}, Verbs: all, Resources: []string{"horizontalpodautoscalers"}},
		{APIGroups: []string{"policy"}, Verbs: all, Resources: []string{"poddisruptionbudgets"}},
		{APIGroups: []string{"networking.k8s.io"}, Verbs: all, Resources: []string{"ingresses", "networkpolicies"}},
		{APIGroups: []string{"discovery.k8s.io"}, Verbs: read, Resources: []string{"endpointslices"}},
		{APIGroups: []string{"events.k8s.io"}, Verbs: read, Resources: []string{"events"}},
	}
}

// HeldGPUs is the GPU capacity of the cluster's nodes handed to ws.
func HeldGPUs(ctx context.Context, kc kubernetes.Interface, ws string) (int64, error) {
	nodes, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{inventory.LabelWorkspace: ws}).String()})
	if err != nil {
		return 0, fmt.Errorf("list nodes of workspace %s: %w", ws, err)
	}
	var n int64
	for _, node := range nodes.Items {
		if node.Labels[inventory.LabelWorkspace] != ws { // fake clientsets may ignore selectors
			continue
		}
		q := node.Status.Capacity[inventory.ResourceGPU]
		n += q.Value()
	}
	return n, nil
}

// Ensure brings the workspace's objects on the cluster to s. It stops at the
// first error; ErrForeign means an object of the same name is someone else's.
func Ensure(ctx context.Context, kc kubernetes.Interface, s Spec) error {
	if len(s.Namespaces) == 0 {
		return fmt.Errorf("workspace %s has no namespace", s.Workspace)
	}
	for _, ns := range s.Namespaces {
		if err := ensureNamespace(ctx, kc, s.Workspace, ns); err != nil {
			return err
		}
	}
	if err := ensureServiceAccount(ctx, kc, s.Workspace, s.Namespaces[0]); err != nil {
		return err
	}
	for _, ns := range s.Namespaces {
		if err := ensureRole(ctx, kc, s.Workspace, ns); err != nil {
			return err
		}
		if err := ensureRoleBinding(ctx, kc, s.Workspace, ns, s.Namespaces[0]); err != nil {
			return err
		}
		if err := ensureQuota(ctx, kc, s.Workspace, ns, s.GPUs); err != nil {
			return err
		}
	}
	return nil
}

// SetQuota sets the GPU quota of ws's namespaces on the cluster to gpus,
// leaving everything else as it is (the apply and remove paths).
func SetQuota(ctx context.Context, kc kubernetes.Interface, ws string, namespaces []string, gpus int64) error {
	for _, ns := range namespaces {
		if err := ensureQuota(ctx, kc, ws, ns, gpus); err != nil {
			return err
		}
	}
	return nil
}

// Namespaces lists the namespaces the provisioner created on the cluster,
// by workspace.
func Namespaces(ctx context.Context, kc kubernetes.Interface) (map[string][]string, error) {
	list, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: Selector().String()})
	if err != nil {
		return nil, fmt.Errorf("list managed namespaces: %w", err)
	}
	out := map[string][]string{}
	for _, ns := range list.Items {
		if ns.Labels[LabelManagedBy] != ManagedBy {
			continue
		}
		ws := ns.Labels[LabelWorkspace]
		out[ws] = append(out[ws], ns.Name)
	}
	return out, nil
}

// WorkspaceNamespaces lists the namespaces the provisioner created for ws on
// the cluster (filtered by the API server), leaving out those being deleted
// (their contents go with them, and nothing can be created in them).
func WorkspaceNamespaces(ctx context.Context, kc kubernetes.Interface, ws string) ([]string, error) {
	list, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: WorkspaceSelector(ws).String()})
	if err != nil {
		return nil, fmt.Errorf("list namespaces of workspace %s: %w", ws, err)
	}
	var out []string
	for _, ns := range list.Items {
		if owned(&ns, ws) && ns.DeletionTimestamp == nil {
			out = append(out, ns.Name)
		}
	}
	return out, nil
}

// DeleteNamespaces deletes the given namespaces if they are ws's (their
// contents go with them); a namespace already gone or being deleted is
// skipped.
func DeleteNamespaces(ctx context.Context, kc kubernetes.Interface, ws string, names []string) error {
	for _, name := range names {
		ns, err := kc.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get namespace %s: %w", name, err)
		}
		if !owned(ns, ws) || ns.DeletionTimestamp != nil {
			continue
		}
		uid := ns.UID
		err = kc.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", name, err)
		}
	}
	return nil
}

// Delete removes every namespace the provisioner created for ws on the cluster.
func Delete(ctx context.Context, kc kubernetes.Interface, ws string) error {
	names, err := WorkspaceNamespaces(ctx, kc, ws)
	if err != nil {
		return err
	}
	return DeleteNamespaces(ctx, kc, ws, names)
}

func foreign(kind, ns, name, ws string) error {
	if ns != "" {
		name = ns + "/" + name
	}
	return fmt.Errorf("%s %s (workspace %s): %w", kind, name, ws, ErrForeign)
}

// mergeMap returns have with want's keys set, and whether that changed have.
func mergeMap(have, want map[string]string) (map[string]string, bool) {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	changed := false
	for k, v := range want {
		if cur, ok := out[k]; !ok || cur != v {
			out[k] = v
			changed = true
		}
	}
	return out, changed
}

func ensureNamespace(ctx context.Context, kc kubernetes.Interface, ws, name string) error {
	api := kc.CoreV1().Namespaces()
	ns, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: name, Labels: ownLabels(ws), Annotations: NamespaceAnnotations(ws)}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if !owned(ns, ws) {
		return foreign("namespace", "", name, ws)
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("namespace %s is being deleted; retry when it is gone", name)
	}
	annotations, changed := mergeMap(ns.Annotations, NamespaceAnnotations(ws))
	if !changed {
		return nil
	}
	ns = ns.DeepCopy()
	ns.Annotations = annotations
	if _, err := api.Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update namespace %s: %w", name, err)
	}
	return nil
}

func ensureServiceAccount(ctx context.Context, kc kubernetes.Interface, ws, ns string) error {
	api := kc.CoreV1().ServiceAccounts(ns)
	sa, err := api.Get(ctx, ServiceAccountName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: ServiceAccountName, Namespace: ns, Labels: ownLabels(ws)}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create service account %s/%s: %w", ns, ServiceAccountName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get service account %s/%s: %w", ns, ServiceAccountName, err)
	}
	if !owned(sa, ws) {
		return foreign("service account", ns, ServiceAccountName, ws)
	}
	return nil
}

func ensureRole(ctx context.Context, kc kubernetes.Interface, ws, ns string) error {
	api := kc.RbacV1().Roles(ns)
	role, err := api.Get(ctx, RoleName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: RoleName, Namespace: ns,
			Labels: ownLabels(ws)}, Rules: Rules()}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create role %s/%s: %w", ns, RoleName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get role %s/%s: %w", ns, RoleName, err)
	}
	if !owned(role, ws) {
		return foreign("role", ns, RoleName, ws)
	}
	if equality.Semantic.DeepEqual(role.Rules, Rules()) {
		return nil
	}
	role = role.DeepCopy()
	role.Rules = Rules()
	if _, err := api.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update role %s/%s: %w", ns, RoleName, err)
	}
	return nil
}

func roleBinding(ws, ns, saNamespace string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: RoleName, Namespace: ns, Labels: ownLabels(ws)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccountName, Namespace: saNamespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: RoleName},
	}
}

func ensureRoleBinding(ctx context.Context, kc kubernetes.Interface, ws, ns, saNamespace string) error {
	api := kc.RbacV1().RoleBindings(ns)
	want := roleBinding(ws, ns, saNamespace)
	rb, err := api.Get(ctx, RoleName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create role binding %s/%s: %w", ns, RoleName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get role binding %s/%s: %w", ns, RoleName, err)
	}
	if !owned(rb, ws) {
		return foreign("role binding", ns, RoleName, ws)
	}
	if rb.RoleRef == want.RoleRef && slices.Equal(rb.Subjects, want.Subjects) {
		return nil
	}
	if rb.RoleRef != want.RoleRef { // immutable: replace the binding
		uid := rb.UID
		if err := api.Delete(ctx, RoleName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil &&
			!apierrors.IsNotFound(err) {
			return fmt.Errorf("replace role binding %s/%s: %w", ns, RoleName, err)
		}
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("replace role binding %s/%s: %w", ns, RoleName, err)
		}
		return nil
	}
	rb = rb.DeepCopy()
	rb.Subjects = want.Subjects
	if _, err := api.Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update role binding %s/%s: %w", ns, RoleName, err)
	}
	return nil
}

func ensureQuota(ctx context.Context, kc kubernetes.Interface, ws, ns string, gpus int64) error {
	api := kc.CoreV1().ResourceQuotas(ns)
	hard := corev1.ResourceList{QuotaResource: *resource.NewQuantity(gpus, resource.DecimalSI)}
	q, err := api.Get(ctx, QuotaName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: QuotaName, Namespace: ns,
			Labels: ownLabels(ws)}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create resource quota %s/%s: %w", ns, QuotaName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get resource quota %s/%s: %w", ns, QuotaName, err)
	}
	if !owned(q, ws) {
		return foreign("resource quota", ns, QuotaName, ws)
	}
	if equality.Semantic.DeepEqual(q.Spec.Hard, hard) {
		return nil
	}
	q = q.DeepCopy()
	q.Spec.Hard = hard
	if _, err := api.Update(ctx, q, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update resource quota %s/%s: %w", ns, QuotaName, err)
	}
	return nil
}
