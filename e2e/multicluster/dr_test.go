package multicluster

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/e2e/harness"
)

// rotorCLI runs bin/rotor against the control cluster.
func rotorCLI(t *testing.T, env *harness.Env, args ...string) string {
	t.Helper()
	args = append([]string{"--kubeconfig", env.Control.Kubeconfig}, args...)
	out, err := exec.Command(filepath.Join(env.RepoRoot, "bin", "rotor"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rotor %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// succeededOn counts, per cluster, the attempts that succeeded.
func succeededOn(wfs ...*v1alpha1.Workflow) map[string]int {
	out := map[string]int{}
	for _, wf := range wfs {
		for _, ns := range wf.Status.Nodes {
			for _, a := range ns.Attempts {
				if a.Phase == v1alpha1.NodeSucceeded {
					out[a.Cluster]++
				}
			}
		}
	}
	return out
}

func waitReady(t *testing.T, env *harness.Env, name string, want metav1.ConditionStatus) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := env.Rotor.RotorV1alpha1().Clusters().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady)
		return cond != nil && cond.Status == want, nil
	})
	if err != nil {
		t.Fatalf("cluster %s never Ready=%s", name, want)
	}
}

// TestDisasterRecovery: with target-1 (east) in failover group 0 and the
// others (west) in group 1, placements go to east while it is healthy,
// to west while east is lost, and back to east once it recovers.
func TestDisasterRecovery(t *testing.T) {
	env := failoverEnv(t)
	for _, name := range []string{"target-2", "target-3"} {
		editCluster(t, env, name, func(c *v1alpha1.Cluster) { c.Spec.FailoverGroup = 1 })
	}
	if err := env.CreateNamespaces(context.Background(), "dr"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	batch := func(name string) *v1alpha1.Workflow {
		return waitSucceeded(t, env, submit(t, env, "dr", fanOut(name, 10, "200ms", "")), 2*time.Minute)
	}
	healthy := succeededOn(batch("healthy"))
	t.Logf("east healthy: %v", healthy)
	if healthy["target-1"] != 10 {
		t.Fatalf("east healthy: placed %v, want all on target-1", healthy)
	}
	if err := env.KillAPIServer("target-1"); err != nil {
		t.Fatal(err)
	}
	lostAt := time.Now()
	waitReady(t, env, "target-1", metav1.ConditionFalse)
	t.Logf("east not ready %s after its apiserver died", time.Since(lostAt).Round(time.Millisecond))
	lost := succeededOn(batch("east-lost"))
	t.Logf("east lost: %v", lost)
	if lost["target-1"] != 0 || lost["target-2"]+lost["target-3"] != 10 {
		t.Fatalf("east lost: ran %v, want all on the west group", lost)
	}
	if err := env.RestartAPIServer(context.Background(), "target-1"); err != nil {
		t.Fatal(err)
	}
	waitReady(t, env, "target-1", metav1.ConditionTrue)
	back := succeededOn(batch("east-back"))
	t.Logf("east back: %v", back)
	if back["target-1"] != 10 {
		t.Fatalf("east back: placed %v, want all on target-1 again", back)
	}
	out := rotorCLI(t, env, "clusters")
	t.Logf("rotor clusters:\n%s", out)
	if !strings.Contains(out, "target-1") || !strings.Contains(out, "LAST PROBE") {
		t.Fatalf("rotor clusters printed %q", out)
	}
}

// TestCordonDrainCLI: rotor cordon keeps new attempts off a cluster;
// rotor drain moves an attempt whose pod cannot start (its node selector
// matches no node) to another cluster and deletes its pod; rotor uncordon
// lets work back.
func TestCordonDrainCLI(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	if err := env.CreateNamespaces(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	// The stuck task's node selector is the tenant's to ask for only if
	// a TenantPolicy allows it; made first, so the propeller's cache has
	// it long before that task.
	allow := &v1alpha1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: tenancy.DefaultPolicyName},
		Spec: v1alpha1.TenantPolicySpec{NodeSelectors: map[string][]string{"nowhere": {"*"}}}}
	if _, err := env.Rotor.RotorV1alpha1().TenantPolicies().Create(ctx, allow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rotorCLI(t, env, "cordon", "target-1")
	time.Sleep(time.Second)
	wf := waitSucceeded(t, env, submit(t, env, "ops", fanOut("cordoned", 12, "100ms", "")), 90*time.Second)
	if got := succeededOn(wf); got["target-1"] != 0 {
		t.Fatalf("placed %v while target-1 was cordoned", got)
	}
	rotorCLI(t, env, "uncordon", "target-1")
	rotorCLI(t, env, "cordon", "target-3")
	time.Sleep(time.Second)
	// Cannot start anywhere: pending until drained off its cluster.
	stuck := submit(t, env, "ops", fanOut("pending", 1, "100ms", "      pod: {nodeSelector: {nowhere: \"true\"}}\n"))
	stuck = env.WaitWorkflow(t, stuck, 30*time.Second, func(w *v1alpha1.Workflow) bool {
		a := w.Status.Nodes["n00"].Attempts
		return len(a) == 1 && a[0].Pod != ""
	})
	first := stuck.Status.Nodes["n00"].Attempts[0]
	out := rotorCLI(t, env, "drain", first.Cluster)
	t.Logf("attempt 0 pending on %s; %s", first.Cluster, strings.TrimSpace(out))
	stuck = env.WaitWorkflow(t, stuck, 30*time.Second, func(w *v1alpha1.Workflow) bool {
		a := w.Status.Nodes["n00"].Attempts
		return len(a) == 2 && a[1].Cluster != ""
	})
	a := stuck.Status.Nodes["n00"].Attempts
	t.Logf("after drain: attempt 0 %s (%s), attempt 1 on %s", a[0].Reason, a[0].Message, a[1].Cluster)
	if a[0].Reason != v1alpha1.ReasonClusterDrained || !a[0].System || a[1].Cluster == first.Cluster || a[1].Cluster == "target-3" {
		t.Fatalf("attempts %+v, want attempt 0 drained and attempt 1 on the remaining cluster", a)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, p := range env.TaskPods(t, "ops", "") {
			if p.Name == first.Pod && p.Cluster == first.Cluster && p.DeletionTimestamp == nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pod %s still on drained %s", first.Pod, first.Cluster)
	}
	rotorCLI(t, env, "uncordon", first.Cluster)
}
