package pod

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/plugins"
)

type policyMap map[string]tenancy.Policy

func (m policyMap) For(ns string) (tenancy.Policy, error) {
	if p, ok := m[ns]; ok {
		return p, nil
	}
	return tenancy.Builtin, nil
}

// TestTenantIsolation: a task asking for what its policy does not allow
// fails PolicyDenied with no pod; an allowed one gets the tenant set up in
// the target (Pod Security label at the policy's level, rotor-task and
// rotor-launcher without tokens, the launcher's binding) and a pod that
// runs as rotor-task with the restricted defaults. A level change
// relabels a namespace Rotor made; the platform's own namespace keeps
// its labels.
func TestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	target := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform", Labels: map[string]string{"owner": "platform"}}})
	policies := policyMap{}
	p := New(Config{Tenants: policies})
	attempt := 0
	tc := func(ns string, task *v1alpha1.TaskTemplate) *plugins.TaskContext {
		attempt++
		return &plugins.TaskContext{
			ID:      plugins.TaskID{Namespace: ns, Workflow: "wf", WorkflowUID: "uid", Node: "a", Attempt: int32(attempt)},
			Task:    task,
			Cluster: &plugins.Cluster{Name: "east", Client: target},
		}
	}
	plain := &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}}
	privileged := &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox",
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}
	foreign := &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}, Pod: &v1alpha1.PodOptions{ServiceAccountName: "admin"}}
	pods := func(ns string) []corev1.Pod {
		t.Helper()
		l, err := target.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}

	for _, task := range []*v1alpha1.TaskTemplate{privileged, foreign} {
		info, err := p.create(ctx, tc("team-a", task), "wf-a-denied")
		if err != nil || info.Phase != plugins.PhaseFailed || info.Reason != tenancy.ReasonPolicyDenied ||
			!strings.Contains(info.Message, "built-in tenant policy") {
			t.Fatalf("denied task: %+v, %v; want Failed %s naming the policy", info, err, tenancy.ReasonPolicyDenied)
		}
		if n := len(pods("team-a")); n != 0 {
			t.Fatalf("a denied task created %d pods", n)
		}
	}

	c := tc("team-a", plain)
	info, err := p.create(ctx, c, Name(c.ID))
	if err != nil || info.Reason != "PodCreated" {
		t.Fatalf("allowed task: %+v, %v", info, err)
	}
	got := pods("team-a")
	if len(got) != 1 {
		t.Fatalf("%d pods, want 1", len(got))
	}
	spec := got[0].Spec
	if spec.ServiceAccountName != tenancy.TaskServiceAccount || spec.SecurityContext == nil || !ptr.Deref(spec.SecurityContext.RunAsNonRoot, false) ||
		ptr.Deref(spec.Containers[0].SecurityContext.AllowPrivilegeEscalation, true) {
		t.Fatalf("pod spec %+v: want rotor-task and the restricted defaults", spec)
	}
	ns, err := target.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{})
	if err != nil || ns.Labels[LabelPSAEnforce] != "restricted" || ns.Labels[LabelManaged] != "true" {
		t.Fatalf("namespace %+v, %v: want managed, enforce=restricted", ns, err)
	}
	for _, sa := range []string{tenancy.TaskServiceAccount, tenancy.LauncherServiceAccount} {
		obj, err := target.CoreV1().ServiceAccounts("team-a").Get(ctx, sa, metav1.GetOptions{})
		if err != nil || ptr.Deref(obj.AutomountServiceAccountToken, true) {
			t.Fatalf("ServiceAccount %s: %+v, %v; want it, without token automount", sa, obj, err)
		}
	}
	rb, err := target.RbacV1().RoleBindings("team-a").Get(ctx, tenancy.LauncherServiceAccount, metav1.GetOptions{})
	if err != nil || rb.RoleRef.Name != tenancy.LauncherClusterRole || rb.Subjects[0].Name != tenancy.LauncherServiceAccount {
		t.Fatalf("launcher binding %+v, %v", rb, err)
	}

	// The platform moves team-a to baseline: its namespace follows, and
	// pods no longer get the restricted defaults.
	policies["team-a"] = tenancy.Policy{Name: "ml", Spec: v1alpha1.TenantPolicySpec{PodSecurity: v1alpha1.PodSecurityBaseline}}
	c = tc("team-a", plain)
	if _, err := p.create(ctx, c, Name(c.ID)); err != nil {
		t.Fatal(err)
	}
	ns, _ = target.CoreV1().Namespaces().Get(ctx, "team-a", metav1.GetOptions{})
	if ns.Labels[LabelPSAEnforce] != "baseline" {
		t.Fatalf("after the policy change: enforce=%q, want baseline", ns.Labels[LabelPSAEnforce])
	}
	pod, _ := target.CoreV1().Pods("team-a").Get(ctx, Name(c.ID), metav1.GetOptions{})
	if pod == nil || pod.Spec.SecurityContext != nil {
		t.Fatalf("baseline pod %+v: want no restricted defaults", pod)
	}

	// The launcher's binding deleted behind Rotor's back: the target's
	// RBAC refuses the launcher, Rotor sets the tenant up again and the
	// create goes through. (The fake has no RBAC; the reactor is it.)
	rbac := func(verb string) k8stesting.ReactionFunc {
		return func(a k8stesting.Action) (bool, runtime.Object, error) {
			if _, err := target.Tracker().Get(rbacv1.SchemeGroupVersion.WithResource("rolebindings"), a.GetNamespace(), tenancy.LauncherServiceAccount); err != nil {
				return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", fmt.Errorf("User %q cannot %s resource \"pods\" in API group \"\" in the namespace %q",
					"system:serviceaccount:"+a.GetNamespace()+":rotor-launcher", verb, a.GetNamespace()))
			}
			return false, nil, nil
		}
	}
	target.PrependReactor("create", "pods", rbac("create"))
	target.PrependReactor("delete", "pods", rbac("delete"))
	if err := target.RbacV1().RoleBindings("team-a").Delete(ctx, tenancy.LauncherServiceAccount, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c = tc("team-a", plain)
	if info, err := p.create(ctx, c, Name(c.ID)); err != nil || info.Reason != "PodCreated" {
		t.Fatalf("after the binding was deleted: %+v, %v; want the tenant set up again and the pod created", info, err)
	}
	if _, err := target.RbacV1().RoleBindings("team-a").Get(ctx, tenancy.LauncherServiceAccount, metav1.GetOptions{}); err != nil {
		t.Fatalf("the launcher's binding was not made again: %v", err)
	}

	// A stray pod in a namespace Rotor never set up on this cluster: the
	// abort sets the tenant up and deletes it as the launcher.
	if _, err := target.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c = tc("team-s", plain)
	if err := target.Tracker().Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: Name(c.ID), Namespace: "team-s"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Abort(ctx, c); err != nil {
		t.Fatalf("abort of a pod in a namespace not set up: %v; want it set up and the pod deleted", err)
	}
	if n := len(pods("team-s")); n != 0 {
		t.Fatalf("%d pods left in team-s after the abort", n)
	}

	// A namespace the platform made keeps its labels.
	c = tc("platform", plain)
	if _, err := p.create(ctx, c, Name(c.ID)); err != nil {
		t.Fatal(err)
	}
	ns, _ = target.CoreV1().Namespaces().Get(ctx, "platform", metav1.GetOptions{})
	if _, ok := ns.Labels[LabelPSAEnforce]; ok || ns.Labels["owner"] != "platform" {
		t.Fatalf("platform namespace relabelled: %v", ns.Labels)
	}
}
