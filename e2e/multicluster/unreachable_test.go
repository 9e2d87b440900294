package multicluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/internal/silentnet"
)

const silentKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: s, cluster: {server: "https://ADDR", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: s, context: {cluster: s, user: u}}]
current-context: s
`

// TestSilentClusterDoesNotStallRegistration: a Cluster whose apiserver
// accepts connections and never answers is registered first; a reachable
// Cluster registered after it must take work within a deadline (before,
// the Cluster handler waited for the silent one's pod cache for ever and
// never got to the second).
func TestSilentClusterDoesNotStallRegistration(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	// The late Cluster is target-1 under another name: target-1 goes
	// first, so no two Clusters share an apiserver.
	existing, err := env.Rotor.RotorV1alpha1().Clusters().Get(ctx, env.Env.Targets[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Rotor.RotorV1alpha1().Clusters().Delete(ctx, existing.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-silent", Namespace: localcluster.RotorNamespace},
		StringData: map[string]string{"kubeconfig": strings.Replace(silentKubeconfig, "ADDR", silentnet.Listen(t), 1)},
	}
	if _, err := env.Kube.CoreV1().Secrets(localcluster.RotorNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	silent := &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "silent"},
		Spec: v1alpha1.ClusterSpec{KubeconfigSecretRef: &v1alpha1.SecretKeyRef{Name: sec.Name, Namespace: localcluster.RotorNamespace}, Weight: 1}}
	if _, err := env.Rotor.RotorV1alpha1().Clusters().Create(ctx, silent, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the propeller is connecting to it
	late := &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "late", Labels: map[string]string{"only": "late"}},
		Spec: v1alpha1.ClusterSpec{KubeconfigSecretRef: existing.Spec.KubeconfigSecretRef, Weight: 1, Runtime: existing.Spec.Runtime}}
	registered := time.Now()
	if _, err := env.Rotor.RotorV1alpha1().Clusters().Create(ctx, late, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.CreateNamespaces(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	wf := submit(t, env, "team", fanOut("to-late", 1, "100ms", "      clusterSelector: {only: late}\n"))
	got := env.WaitWorkflow(t, wf, 30*time.Second, harness.Ended)
	took := time.Since(registered)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow on the late cluster: %s (%s)", got.Status.Phase, got.Status.Message)
	}
	t.Logf("silent cluster registered first; a workflow on the cluster registered after it succeeded %s later", took.Round(time.Millisecond))
	// Queued with NoCluster is looked at again every 5 s; the cluster
	// itself is usable within milliseconds.
	if took > 15*time.Second {
		t.Fatalf("the late cluster took work %s after it was registered, goal 15s", took)
	}
	if a := got.Status.Nodes["n00"].Attempts; len(a) != 1 || a[0].Cluster != "late" {
		t.Fatalf("attempts %+v, want one on the late cluster", a)
	}
}

// TestFinalizerGivesUpOnUnreachableTarget: a workflow deleted while its
// pod's cluster is down waits, with a CleanupBlocked condition naming
// that cluster, and goes once the cluster has been unreachable for
// --cleanup-unreachable-timeout, with an Event naming the pod left
// behind.
func TestFinalizerGivesUpOnUnreachableTarget(t *testing.T) {
	const timeout = 12 * time.Second
	env := harness.New(t, harness.Options{Targets: 3, Runtime: localcluster.RuntimeKwok, Replicas: 1,
		PropellerArgs: []string{"--probe-period=1s", "--probe-timeout=1s", fmt.Sprintf("--cleanup-unreachable-timeout=%s", timeout)}})
	ctx := context.Background()
	victim := env.Env.Targets[1].Name
	editCluster(t, env, victim, func(c *v1alpha1.Cluster) { c.Labels["victim"] = "yes" })
	if err := env.CreateNamespaces(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	wf := submit(t, env, "team", fanOut("doomed", 1, "10m", "      clusterSelector: {victim: \"yes\"}\n"))
	env.WaitWorkflow(t, wf, 30*time.Second, func(w *v1alpha1.Workflow) bool {
		return w.Status.Nodes["n00"].Phase == v1alpha1.NodeRunning
	})
	if err := env.KillAPIServer(victim); err != nil {
		t.Fatal(err)
	}
	waitReachable(t, env, victim, metav1.ConditionFalse)
	if err := env.Rotor.RotorV1alpha1().Workflows("team").Delete(ctx, wf.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	blocked := env.WaitWorkflow(t, wf, 20*time.Second, func(w *v1alpha1.Workflow) bool {
		return meta.FindStatusCondition(w.Status.Conditions, v1alpha1.WorkflowCleanupBlocked) != nil
	})
	cond := meta.FindStatusCondition(blocked.Status.Conditions, v1alpha1.WorkflowCleanupBlocked)
	t.Logf("deleted workflow: %s=%s (%s): %s", cond.Type, cond.Status, cond.Reason, cond.Message)
	if cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "on cluster "+victim+", unreachable since") {
		t.Fatalf("condition %+v, want True naming %s", cond, victim)
	}
	if out := rotorCLI(t, env, "get", "-n", "team", wf.Name); !strings.Contains(out, "Deleting:  waiting to delete 1 pod on cluster "+victim) {
		t.Errorf("rotor get does not say what the deletion waits for:\n%s", out)
	}
	// Gone at most a few seconds after the timeout (counted from the
	// first unanswered probe, before the delete).
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout+15*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.Rotor.RotorV1alpha1().Workflows("team").Get(ctx, wf.Name, metav1.GetOptions{})
		return isNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the deleted workflow is still there %s after its cluster went down", timeout+15*time.Second)
	}
	events, err := env.Kube.CoreV1().Events("team").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("reason", "CleanupIncomplete").String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.Items) != 1 || !strings.Contains(events.Items[0].Message, "on "+victim+" (unreachable since") {
		t.Fatalf("CleanupIncomplete events %+v, want one naming the pod left on %s", events.Items, victim)
	}
	t.Logf("event: %s", events.Items[0].Message)
}

func waitReachable(t *testing.T, env *harness.Env, name string, want metav1.ConditionStatus) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := env.Rotor.RotorV1alpha1().Clusters().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReachable)
		return cond != nil && cond.Status == want, nil
	})
	if err != nil {
		t.Fatalf("cluster %s never Reachable=%s", name, want)
	}
}
