package pod

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/plugins"
)

// Pod Security Admission labels on the namespaces Rotor creates.
const (
	LabelPSAEnforce        = "pod-security.kubernetes.io/enforce"
	LabelPSAEnforceVersion = "pod-security.kubernetes.io/enforce-version"
)

// Policies finds the tenant policy of a control-cluster namespace
// (tenancy.Source; a map in tests).
type Policies interface {
	For(namespace string) (tenancy.Policy, error)
}

// tenants remembers which (cluster, namespace) pairs were set up, and at
// which Pod Security level, so that is done once per process and again
// when the level changes or a create shows it undone.
type tenants struct {
	mu    sync.Mutex
	ready map[string]string // cluster/namespace -> level
}

func (t *tenants) level(key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.ready[key]
	return l, ok
}

func (t *tenants) set(key, level string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready == nil {
		t.ready = map[string]string{}
	}
	t.ready[key] = level
}

func (t *tenants) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.ready, key)
}

// policyFor judges the attempt's task against its tenant's policy. A
// non-nil PhaseInfo ends the attempt with ReasonPolicyDenied, before any
// pod: the same pod would be refused every time.
func (p *Plugin) policyFor(tc *plugins.TaskContext) (tenancy.Policy, *plugins.PhaseInfo) {
	pol, err := p.cfg.Tenants.For(tc.ID.Namespace)
	if err != nil {
		return pol, &plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: tenancy.ReasonPolicyDenied, Message: err.Error()}
	}
	if errs := pol.CheckTask(field.NewPath("task"), tc.Task); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return pol, &plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: tenancy.ReasonPolicyDenied,
			Message: fmt.Sprintf("namespace %s may not run this task's pod: %s; change the task, or ask the platform team to allow it in %s",
				tc.ID.Namespace, strings.Join(msgs, "; "), pol)}
	}
	return pol, nil
}

// ensureTenant sets up namespace ns of the attempt's target for its
// tenant, with Rotor's own credential:
//
//   - the namespace, labelled rotor.dev/managed and with the policy's Pod
//     Security level, which the target's apiserver enforces on every pod.
//     The level of a namespace Rotor created follows the policy; one the
//     platform created (no managed label) keeps its own labels.
//   - ServiceAccount rotor-task, that pods run as by default, without a
//     token mounted;
//   - ServiceAccount rotor-launcher and its RoleBinding to the
//     rotor-tenant-launcher ClusterRole: the identity Rotor impersonates
//     to create the tenant's pods and Secret copies, which can do that in
//     this namespace only.
func (p *Plugin) ensureTenant(ctx context.Context, tc *plugins.TaskContext, pol tenancy.Policy) error {
	key := tc.Cluster.Name + "/" + tc.ID.Namespace
	level := pol.Level()
	if l, ok := p.tenants.level(key); ok && l == level {
		return nil
	}
	ns, cl := tc.ID.Namespace, tc.Cluster.Client
	where := func(what string, err error) error {
		return fmt.Errorf("set up tenant namespace %s in cluster %s: %s: %w", ns, tc.Cluster.Name, what, err)
	}
	want := map[string]string{LabelManaged: "true", LabelPSAEnforce: level, LabelPSAEnforceVersion: "latest"}
	existing, err := cl.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cl.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: want}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return where("create the namespace", err)
		}
	case err != nil:
		return where("read the namespace", err)
	case existing.Labels[LabelManaged] == "true" && (existing.Labels[LabelPSAEnforce] != level || existing.Labels[LabelPSAEnforceVersion] != "latest"):
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q,%q:"latest"}}}`, LabelPSAEnforce, level, LabelPSAEnforceVersion)
		if _, err := cl.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return where("label the namespace's Pod Security level "+level, err)
		}
	}
	for _, sa := range []string{tenancy.TaskServiceAccount, tenancy.LauncherServiceAccount} {
		obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns, Labels: map[string]string{LabelManaged: "true"}},
			AutomountServiceAccountToken: ptr.To(false)}
		if _, err := cl.CoreV1().ServiceAccounts(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return where("create ServiceAccount "+sa, err)
		}
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: tenancy.LauncherServiceAccount, Namespace: ns, Labels: map[string]string{LabelManaged: "true"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: tenancy.LauncherClusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: tenancy.LauncherServiceAccount, Namespace: ns}},
	}
	if _, err := cl.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return where("bind ServiceAccount "+tenancy.LauncherServiceAccount+" to ClusterRole "+tenancy.LauncherClusterRole+" (installed by charts/rotor-target)", err)
	}
	p.tenants.set(key, level)
	return nil
}

// launcher is the client that creates the attempt's pod and Secret
// copies: the tenant's launcher identity with tenant isolation, Rotor's
// own credential without.
func (p *Plugin) launcher(tc *plugins.TaskContext) (corev1client.CoreV1Interface, error) {
	if p.cfg.Tenants == nil || tc.Cluster.Tenant == nil {
		return tc.Cluster.Client.CoreV1(), nil
	}
	return tc.Cluster.Tenant(tc.ID.Namespace)
}
