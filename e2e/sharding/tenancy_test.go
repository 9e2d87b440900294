package sharding

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// oneTask is a workflow of one node running task t with the given extra
// YAML under the task (indented for it).
func oneTask(name, task string) string {
	return fmt.Sprintf(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: %s}
spec:
  tasks:
    t:
      container: {image: busybox, command: [sh, -c, "exit 0"]%s}
  nodes:
  - {name: a, task: t}
`, name, task)
}

// TestTenantIsolation: tenants in the target run under their own
// identity and their TenantPolicy.
//
//   - Without the webhook, a privileged task gets in and its node fails
//     PolicyDenied naming the built-in policy, with no pod in the target;
//     one asking to run as root passes Rotor's policy but not the target's
//     Pod Security (restricted): PodRejected, no pod.
//   - An allowed task runs as rotor-task with the restricted defaults in
//     a namespace labelled enforce=restricted; a tenant whose TenantPolicy
//     allows ServiceAccount trainer runs as it under baseline, with its
//     cpu ceiling as the limit.
//   - The target's audit log shows every task pod created by Rotor acting
//     as its own namespace's rotor-launcher.
//   - With the webhook registered, kubectl apply of a privileged task or
//     of a ServiceAccount the tenant may not use is refused (403) naming
//     the field and the policy; the same ServiceAccount in the tenant
//     that may use it is admitted.
func TestTenantIsolation(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1, Sharded: true, Managers: 1, TargetAuditLog: true})
	ctx := context.Background()
	const plain, ml = "iso-a", "iso-ml"
	if err := env.CreateNamespaces(ctx, plain, ml); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.CoreV1().Namespaces().Patch(ctx, ml, types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"ml"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := parse(t, `apiVersion: rotor.dev/v1alpha1
kind: TenantPolicy
metadata: {name: ml}
spec:
  namespaceSelector: {matchLabels: {tier: ml}}
  podSecurity: baseline
  serviceAccounts: [trainer]
  maxResources: {cpu: "2"}
`, &v1alpha1.TenantPolicy{})
	if _, err := env.Rotor.RotorV1alpha1().TenantPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	submit := func(ns, yaml string) *v1alpha1.Workflow {
		t.Helper()
		wf, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, parse(t, yaml, &v1alpha1.Workflow{}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s/%s: %v", ns, yaml[:40], err)
		}
		return wf
	}
	target := env.Target("target-1")
	podOf := func(ns, wf string) int {
		t.Helper()
		return len(env.TaskPods(t, ns, pod.LabelWorkflowUID+"="+wf))
	}

	// Got in (no webhook yet): the engine's own check.
	priv := submit(plain, oneTask("priv", ", securityContext: {privileged: true}"))
	root := submit(plain, oneTask("root", ", securityContext: {runAsUser: 0}"))
	for _, c := range []struct {
		wf             *v1alpha1.Workflow
		reason, phrase string
	}{
		{priv, tenancy.ReasonPolicyDenied, "the tenant may not run privileged containers"},
		{root, "PodRejected", "violates PodSecurity \"restricted:latest\""},
	} {
		got := env.WaitWorkflow(t, c.wf, 60*time.Second, harness.Ended)
		n := got.Status.Nodes["a"]
		if got.Status.Phase != v1alpha1.WorkflowFailed || n.Reason != c.reason || !strings.Contains(n.Message, c.phrase) {
			t.Fatalf("%s ended %s, node a %s %q; want Failed, %s saying %q", c.wf.Name, got.Status.Phase, n.Reason, n.Message, c.reason, c.phrase)
		}
		if c.reason == tenancy.ReasonPolicyDenied && !strings.Contains(n.Message, "built-in tenant policy") {
			t.Errorf("%s: message %q does not name the policy", c.wf.Name, n.Message)
		}
		if k := podOf(plain, string(c.wf.UID)); k != 0 {
			t.Fatalf("%s: %d pods in the target, want none", c.wf.Name, k)
		}
	}

	// Allowed: the tenant's identity and the level's defaults.
	ok := submit(plain, oneTask("ok", ""))
	trained := submit(ml, strings.Replace(oneTask("trained", ""), "      container:", "      pod: {serviceAccountName: trainer}\n      container:", 1))
	for _, c := range []struct {
		wf           *v1alpha1.Workflow
		ns, sa, psa  string
		nonRoot, cap bool
	}{
		{ok, plain, tenancy.TaskServiceAccount, "restricted", true, false},
		{trained, ml, "trainer", "baseline", false, true},
	} {
		if got := env.WaitWorkflow(t, c.wf, 60*time.Second, harness.Ended); got.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s ended %s: %s (node a: %+v)", c.wf.Name, got.Status.Phase, got.Status.Message, got.Status.Nodes["a"])
		}
		pods := env.TaskPods(t, c.ns, pod.LabelWorkflowUID+"="+string(c.wf.UID))
		if len(pods) != 1 {
			t.Fatalf("%s: %d pods, want 1", c.wf.Name, len(pods))
		}
		spec := pods[0].Spec
		if spec.ServiceAccountName != c.sa {
			t.Errorf("%s: pod runs as %q, want %s", c.wf.Name, spec.ServiceAccountName, c.sa)
		}
		nonRoot := spec.SecurityContext != nil && ptr.Deref(spec.SecurityContext.RunAsNonRoot, false)
		if nonRoot != c.nonRoot {
			t.Errorf("%s: pod runAsNonRoot %v, want %v", c.wf.Name, nonRoot, c.nonRoot)
		}
		if lim := spec.Containers[0].Resources.Limits.Cpu(); c.cap && lim.String() != "2" {
			t.Errorf("%s: cpu limit %s, want the tenant's ceiling 2", c.wf.Name, lim.String())
		}
		ns, err := target.CoreV1().Namespaces().Get(ctx, c.ns, metav1.GetOptions{})
		if err != nil || ns.Labels[pod.LabelPSAEnforce] != c.psa {
			t.Fatalf("target namespace %s: labels %v, %v; want %s=%s", c.ns, ns.Labels, err, pod.LabelPSAEnforce, c.psa)
		}
		for _, sa := range []string{tenancy.TaskServiceAccount, tenancy.LauncherServiceAccount} {
			if _, err := target.CoreV1().ServiceAccounts(c.ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
				t.Errorf("ServiceAccount %s/%s in the target: %v", c.ns, sa, err)
			}
		}
	}

	// Who created the pods: every create in the tenants' namespaces acted
	// as that namespace's launcher.
	time.Sleep(2 * time.Second) // the audit log is written in 1 s batches
	events, err := harness.ReadAudit(env.Env.Targets[0].AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, e := range events {
		if e.Verb != "create" || e.ObjectRef == nil || e.ObjectRef.Resource != "pods" || e.ObjectRef.Subresource != "" ||
			(e.ObjectRef.Namespace != plain && e.ObjectRef.Namespace != ml) {
			continue
		}
		creates++
		want := "system:serviceaccount:" + e.ObjectRef.Namespace + ":" + tenancy.LauncherServiceAccount
		if e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != want {
			t.Errorf("pod %s/%s created by %s acting as %+v; want as %s", e.ObjectRef.Namespace, e.ObjectRef.Name, e.User.Username, e.ImpersonatedUser, want)
		}
	}
	// ok and trained succeeded; root's create was refused (403) and is
	// logged too.
	if creates < 3 {
		t.Fatalf("%d pod creates in the target's audit log for %s and %s, want at least 3", creates, plain, ml)
	}

	// At admission.
	if err := env.RegisterWebhook(ctx, env.ManagerWebhook[0]); err != nil {
		t.Fatal(err)
	}
	api := env.Rotor.RotorV1alpha1().Workflows(plain)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = api.Create(ctx, parse(t, oneTask("probe", ", securityContext: {privileged: true}"), &v1alpha1.Workflow{}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "spec.tasks[t].container.securityContext.privileged") ||
		!strings.Contains(err.Error(), "built-in tenant policy") {
		t.Fatalf("create of a privileged task with the webhook registered (30 s): %v; want 403 naming the field and the policy", err)
	}
	foreign := strings.Replace(oneTask("foreign", ""), "      container:", "      pod: {serviceAccountName: trainer}\n      container:", 1)
	_, err = api.Create(ctx, parse(t, foreign, &v1alpha1.Workflow{}), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "spec.tasks[t].pod.serviceAccountName") || !strings.Contains(err.Error(), "allowed: rotor-task") {
		t.Fatalf("create of a task as ServiceAccount trainer in %s: %v; want 403 naming the field and what is allowed", plain, err)
	}
	if _, err := api.Get(ctx, "foreign", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused workflow exists: %v", err)
	}
	if _, err := env.Rotor.RotorV1alpha1().Workflows(ml).Create(ctx, parse(t, foreign, &v1alpha1.Workflow{}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("the same task in %s, whose TenantPolicy allows trainer: %v; want it admitted", ml, err)
	}
}
