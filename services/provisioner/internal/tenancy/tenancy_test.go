package tenancy_test

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/open-egs/egs/services/provisioner/internal/tenancy"
)

// TestNamespaceAnnotations checks what the admission plugins will read: the
// node selector and default toleration of the workspace, and a whitelist that
// admits its own taint but not another workspace's.
func TestNamespaceAnnotations(t *testing.T) {
	a := tenancy.NamespaceAnnotations("team-a")
	if got := a[tenancy.AnnotationNodeSelector]; got != "egs.io/workspace=team-a" {
		t.Errorf("node selector = %q", got)
	}
	var defaults, whitelist []corev1.Toleration
	if err := json.Unmarshal([]byte(a[tenancy.AnnotationDefaultTolerations]), &defaults); err != nil || len(defaults) != 1 ||
		defaults[0] != tenancy.Toleration("team-a") {
		t.Errorf("default tolerations = %s (%v)", a[tenancy.AnnotationDefaultTolerations], err)
	}
	if err := json.Unmarshal([]byte(a[tenancy.AnnotationTolerationsWhitelist]), &whitelist); err != nil {
		t.Fatal(err)
	}
	own, other := tenancy.Toleration("team-a"), tenancy.Toleration("team-b")
	hasOwn, hasOther := false, false
	for _, w := range whitelist {
		hasOwn = hasOwn || w == own
		hasOther = hasOther || (w.Key == other.Key && (w.Operator == corev1.TolerationOpExists || w.Value == other.Value))
	}
	if !hasOwn || hasOther {
		t.Errorf("whitelist %s: own toleration %v, another workspace's %v", a[tenancy.AnnotationTolerationsWhitelist], hasOwn, hasOther)
	}
}

// TestRulesGrantNoEscalation checks the workspace Role cannot widen its own
// limits: quotas read-only, nothing on RBAC, namespaces or nodes.
func TestRulesGrantNoEscalation(t *testing.T) {
	for _, r := range tenancy.Rules() {
		for _, g := range r.APIGroups {
			if g == "rbac.authorization.k8s.io" || g == "*" {
				t.Errorf("rule %+v touches RBAC", r)
			}
		}
		for _, res := range r.Resources {
			switch res {
			case "namespaces", "nodes", "*":
				t.Errorf("rule %+v grants %s", r, res)
			case "resourcequotas", "limitranges", "serviceaccounts":
				for _, v := range r.Verbs {
					if v != "get" && v != "list" && v != "watch" {
						t.Errorf("rule %+v may %s %s", r, v, res)
					}
				}
			}
		}
	}
}
