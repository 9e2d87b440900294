package multicluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

const grace = 10 * time.Second

// failoverEnv probes every second (the default 5 s period would make the
// test long, not different) and gives every cluster a 10 s grace period.
func failoverEnv(t *testing.T) *harness.Env {
	// Without the start-only write hold (1 s by default), an attempt's
	// Running shows in the status when the engine sees it: these tests
	// time failover through the status, not the batching of writes.
	env := harness.New(t, harness.Options{Targets: 3, Runtime: localcluster.RuntimeKwok, Replicas: 1,
		PropellerArgs: []string{"--probe-period=1s", "--probe-timeout=1s", "--started-write-delay=0"}})
	for _, c := range env.Env.Targets {
		editCluster(t, env, c.Name, func(c *v1alpha1.Cluster) { c.Spec.UnreachableGracePeriod = &metav1.Duration{Duration: grace} })
	}
	return env
}

// chain3 is three 4 s tasks in a row.
const chain3 = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    step:
      metadata: {annotations: {sim.rotor.dev/duration: 4s}}
      container: {image: busybox}
  nodes:
  - {name: a, task: step}
  - {name: b, task: step, dependsOn: [a]}
  - {name: c, task: step, dependsOn: [b]}
`

// failoverSeen is what firstReplaced saw, with when it saw it.
type failoverSeen struct {
	lost, replaced time.Time // first ClusterLost attempt; first attempt running after one
	what           string
	pod, cluster   string // namespace/name of the re-placed attempt's pod, and its cluster
}

// firstReplaced polls the workflows until an attempt that replaced one
// lost with its cluster is Running, and returns when it saw that and
// when it first saw an attempt abandoned as ClusterLost.
func firstReplaced(ctx context.Context, env *harness.Env) failoverSeen {
	var seen failoverSeen
	_ = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := env.Rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, wf := range list.Items {
			for id, ns := range wf.Status.Nodes {
				as := ns.Attempts
				for i := 1; i < len(as); i++ {
					if as[i-1].Reason != v1alpha1.ReasonClusterLost {
						continue
					}
					if seen.lost.IsZero() {
						seen.lost = time.Now()
					}
					if as[i].Phase == v1alpha1.NodeRunning || as[i].Phase == v1alpha1.NodeSucceeded {
						seen.replaced = time.Now()
						seen.what = fmt.Sprintf("%s/%s node %s attempt %d on %s", wf.Namespace, wf.Name, id, as[i].Number, as[i].Cluster)
						seen.cluster = as[i].Cluster
						seen.pod = wf.Namespace + "/" + pod.Name(pluginsID(wf, v1alpha1.Orphan{Node: id, Attempt: as[i].Number}))
						return true, nil
					}
				}
			}
		}
		return false, nil
	})
	return seen
}

// TestClusterLostFailover: kill one target's kube-apiserver while 200
// workflows run. Every workflow still succeeds, no user retry is spent on
// ClusterLost, the first attempt is abandoned within the grace period +
// 5 s, and its replacement runs elsewhere soon after (the figure is
// logged step by step). Restarted, the lost cluster's orphaned task pods are
// deleted (gone or terminating) within one probe period + 5 s.
func TestClusterLostFailover(t *testing.T) {
	env := failoverEnv(t)
	ctx := context.Background()
	var names []string
	for i := 0; i < 20; i++ {
		names = append(names, fmt.Sprintf("fo-%02d", i))
	}
	if err := env.CreateNamespaces(ctx, names...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, ns := range names {
		wg.Go(func() {
			for i := 0; i < 10; i++ {
				submit(t, env, ns, replaceName(chain3, fmt.Sprintf("wf-%02d", i)))
			}
		})
	}
	wg.Wait()
	time.Sleep(3 * time.Second) // the first tasks are running everywhere
	victim := "target-2"
	watch, stopWatch := context.WithTimeout(ctx, 2*time.Minute)
	defer stopWatch()
	replaced := make(chan failoverSeen, 1)
	go func() { replaced <- firstReplaced(watch, env) }()
	killed := time.Now()
	if err := env.KillAPIServer(victim); err != nil {
		t.Fatal(err)
	}
	seen := <-replaced
	if seen.replaced.IsZero() {
		t.Fatal("no attempt was re-placed within 2 minutes of the kill")
	}
	// The steps between: the prober finding the cluster unreachable (its
	// condition's time has a 1 s grain), the grace period running out
	// (an attempt abandoned as ClusterLost), and the new attempt's pod
	// scheduled and started on another target, its Running written.
	var unreachableAt time.Time
	if c, err := env.Rotor.RotorV1alpha1().Clusters().Get(ctx, victim, metav1.GetOptions{}); err == nil {
		if cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReachable); cond != nil && cond.Status == metav1.ConditionFalse {
			unreachableAt = cond.LastTransitionTime.Time
		}
	}
	var createdAt time.Time
	if ns, name, ok := strings.Cut(seen.pod, "/"); ok && env.Target(seen.cluster) != nil {
		if p, err := env.Target(seen.cluster).CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			createdAt = p.CreationTimestamp.Time
		}
	}
	since := func(at time.Time) string {
		if at.IsZero() {
			return "unknown"
		}
		return at.Sub(killed).Round(time.Millisecond).String()
	}
	took, lostAfter := seen.replaced.Sub(killed), seen.lost.Sub(killed)
	t.Logf("kill of %s's kube-apiserver → unreachable since %s (1 s grain), first attempt abandoned as ClusterLost seen after %s, re-placed pod created %s (1 s grain), running elsewhere after %s (%s); goal grace %s + 5s",
		victim, since(unreachableAt), since(seen.lost), since(createdAt), took.Round(time.Millisecond), seen.what, grace)
	if seen.lost.IsZero() {
		t.Fatal("an attempt was re-placed but none was seen abandoned as ClusterLost")
	}
	if lostAfter < grace {
		t.Fatalf("first ClusterLost seen %s after the kill, before the %s grace period ended", lostAfter, grace)
	}
	// Rotor's own decision: abandoning the attempts once the grace
	// period ends (3 failed probes at 1 s, a poll of 200 ms, slack).
	if lostAfter > grace+5*time.Second {
		t.Errorf("first attempt abandoned as ClusterLost %s after the kill, goal %s", lostAfter, grace+5*time.Second)
	}
	// The re-placed pod then needs the other target's scheduler and node
	// agent, and a status write, all behind the 56–75 other re-placed
	// attempts: under 1 s after the ClusterLost was seen on a quiet
	// machine (12.0 s in all); a CI run on a machine twice as slow took
	// 19.4 s in all (its steps were not logged then). The goal (grace +
	// 5 s) is what rotor-bench failover measures; this bound catches a
	// failover that stalls.
	if took > grace+10*time.Second {
		t.Errorf("first re-placed attempt ran %s after the kill, want within %s (goal %s)", took, grace+10*time.Second, grace+5*time.Second)
	}
	items := waitAllSucceeded(t, env, 200, 4*time.Minute)
	lost, orphans := 0, map[[2]string]bool{} // namespace, pod name
	for _, wf := range items {
		for id, ns := range wf.Status.Nodes {
			for _, a := range ns.Attempts {
				if a.Phase != v1alpha1.NodeFailed {
					continue
				}
				if !a.System || a.Reason != v1alpha1.ReasonClusterLost {
					t.Errorf("%s/%s node %s attempt %d failed as %s (system %v): only system ClusterLost failures expected", wf.Namespace, wf.Name, id, a.Number, a.Reason, a.System)
				}
				lost++
			}
		}
		for _, o := range wf.Status.Orphans {
			orphans[[2]string{wf.Namespace, pod.Name(pluginsID(wf, o))}] = true
		}
	}
	t.Logf("200 workflows succeeded; %d attempts ended ClusterLost and ran again elsewhere; %d orphans recorded", lost, len(orphans))
	if lost == 0 || len(orphans) == 0 {
		t.Fatalf("%d ClusterLost attempts, %d orphans: the kill hit nothing", lost, len(orphans))
	}

	if err := env.RestartAPIServer(ctx, victim); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// A fresh client: the old one's connection died with the apiserver.
	target, err := env.TargetClient(1)
	if err != nil {
		t.Fatal(err)
	}
	var left int
	var example string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		left, example = 0, ""
		for o := range orphans {
			// Deleted means gone, or terminating (kwok, like a kubelet,
			// removes it after the container's grace period).
			p, err := target.CoreV1().Pods(o[0]).Get(ctx, o[1], metav1.GetOptions{})
			switch {
			case isNotFound(err):
			case err != nil:
				return false, nil
			case p.DeletionTimestamp == nil:
				left++
				example = fmt.Sprintf("%s/%s (%s)", o[0], o[1], p.Status.Phase)
			}
		}
		return left == 0, nil
	})
	if err != nil {
		t.Fatalf("%d of %d orphaned pods still on %s a minute after it came back, e.g. %s", left, len(orphans), victim, example)
	}
	gone := time.Since(back)
	t.Logf("%s back: its %d orphaned pods deleted %s after its apiserver was ready (goal: probe period 1s + 5s)", victim, len(orphans), gone.Round(time.Millisecond))
	if gone > 6*time.Second {
		t.Errorf("orphans deleted after %s, goal 6s", gone)
	}
}

func replaceName(src, name string) string { return strings.Replace(src, "NAME", name, 1) }

func pluginsID(wf v1alpha1.Workflow, o v1alpha1.Orphan) plugins.TaskID {
	return plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: o.Node, Attempt: o.Attempt}
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// waitAllSucceeded waits until want workflows have ended and checks that
// every one succeeded.
func waitAllSucceeded(t *testing.T, env *harness.Env, want int, timeout time.Duration) []v1alpha1.Workflow {
	t.Helper()
	items := env.WaitWorkflows(t, want, timeout)
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Errorf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
		}
	}
	return items
}
