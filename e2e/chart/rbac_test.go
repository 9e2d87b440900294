package chart

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// chartServiceAccounts are the identities of Rotor's pods.
var chartServiceAccounts = []string{"rotor-manager", "rotor-propeller"}

func saUser(sa string) string {
	return "system:serviceaccount:" + localcluster.RotorNamespace + ":" + sa
}

// rotorState are the writes that only Rotor itself makes: the engine's
// workflow status and finalizers, the prober's cluster status, the
// scaling of its replicas. (Events are written by every controller here;
// that Rotor's are its ServiceAccounts' shows in the use of their grant.)
var rotorState = map[string]bool{
	"workflows/status": true, "workflows": true, "clusters/status": true, "statefulsets/scale": true,
}

// testRBACLeastPrivilegeFromAudit reads the control apiserver's audit
// log after the install, the sample workflows, the upgrade and
// autoscaling: every write of Rotor's
// own state was made by the chart's ServiceAccounts (none by an
// administrator), none of their requests was refused, and every
// permission the chart grants them was used at least once.
func testRBACLeastPrivilegeFromAudit(t *testing.T) {
	time.Sleep(2 * time.Second) // the audit log is written in 1 s batches
	events, err := harness.ReadAudit(env.Control.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	sas := map[string]bool{}
	for _, sa := range chartServiceAccounts {
		sas[saUser(sa)] = true
	}
	bySA := map[string][]harness.AuditEvent{}
	rotorWrites, refused := 0, 0
	for _, e := range events {
		if sas[e.User.Username] {
			bySA[e.User.Username] = append(bySA[e.User.Username], e)
			if e.ResponseStatus.Code == 403 {
				refused++
				t.Errorf("%s was refused %s %s %s", e.User.Username, e.Verb, e.Resource(), e.RequestURI)
			}
		}
		if !e.Write() || e.ResponseStatus.Code >= 300 || !rotorState[e.Resource()] {
			continue
		}
		// Creating a Workflow is the tenant's; everything else on
		// Rotor's state must be Rotor's ServiceAccounts.
		if e.Resource() == "workflows" && e.Verb == "create" {
			continue
		}
		if !sas[e.User.Username] {
			t.Errorf("%s %s %s/%s by %s: Rotor's state written by someone other than its ServiceAccounts", e.Verb, e.Resource(), e.ObjectRef.Namespace, e.ObjectRef.Name, e.User.Username)
			continue
		}
		rotorWrites++
	}
	t.Logf("audit: %d events; %d writes of Rotor's state, all by its ServiceAccounts; requests per ServiceAccount: manager %d, propeller %d",
		len(events), rotorWrites, len(bySA[saUser("rotor-manager")]), len(bySA[saUser("rotor-propeller")]))
	if rotorWrites == 0 {
		t.Fatal("no write of Rotor's state in the audit log: the sample workflows must have written statuses")
	}
	for _, sa := range chartServiceAccounts {
		grants := grantsOf(t, sa)
		if len(grants) == 0 {
			t.Fatalf("no RBAC grant of the chart names ServiceAccount %s", sa)
		}
		if unused := harness.UnusedGrants(grants, bySA[saUser(sa)]); len(unused) > 0 {
			t.Errorf("ServiceAccount %s was granted permissions it never used (the chart must grant only what Rotor uses):\n  %s", sa, strings.Join(unused, "\n  "))
		}
	}
}

// grantsOf collects the rules of every Role and ClusterRole the chart
// binds to ServiceAccount sa of Rotor's namespace.
func grantsOf(t *testing.T, sa string) []harness.Grant {
	t.Helper()
	ctx := context.Background()
	rbac := env.Kube.RbacV1()
	subject := func(subs []rbacv1.Subject) bool {
		for _, s := range subs {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == localcluster.RotorNamespace {
				return true
			}
		}
		return false
	}
	rules := func(ref rbacv1.RoleRef, ns string) []rbacv1.PolicyRule {
		if ref.Kind == "ClusterRole" {
			r, err := rbac.ClusterRoles().Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("ClusterRole %s: %v", ref.Name, err)
			}
			return r.Rules
		}
		r, err := rbac.Roles(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Role %s/%s: %v", ns, ref.Name, err)
		}
		return r.Rules
	}
	var out []harness.Grant
	crbs, err := rbac.ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range crbs.Items {
		if subject(b.Subjects) {
			for _, r := range rules(b.RoleRef, "") {
				out = append(out, harness.Grant{Role: "ClusterRole " + b.RoleRef.Name, Rule: r})
			}
		}
	}
	rbs, err := rbac.RoleBindings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rbs.Items {
		if subject(b.Subjects) {
			for _, r := range rules(b.RoleRef, b.Namespace) {
				out = append(out, harness.Grant{Role: b.RoleRef.Kind + " " + b.Namespace + "/" + b.RoleRef.Name, Namespace: b.Namespace, Rule: r})
			}
		}
	}
	return out
}
