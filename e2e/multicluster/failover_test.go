package multicluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// firstReplaced polls the workflows until an attempt that replaced one
// lost with its cluster is Running, and returns when it saw that.
func firstReplaced(ctx context.Context, env *harness.Env) (time.Time, string) {
	var at time.Time
	var what string
	_ = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := env.Rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, wf := range list.Items {
			for id, ns := range wf.Status.Nodes {
				as := ns.Attempts
				for i := 1; i < len(as); i++ {
					if as[i-1].Reason == v1alpha1.ReasonClusterLost && (as[i].Phase == v1alpha1.NodeRunning || as[i].Phase == v1alpha1.NodeSucceeded) {
						at, what = time.Now(), fmt.Sprintf("%s/%s node %s attempt %d on %s", wf.Namespace, wf.Name, id, as[i].Number, as[i].Cluster)
						return true, nil
					}
				}
			}
		}
		return false, nil
	})
	return at, what
}

// TestClusterLostFailover: kill one target's kube-apiserver while 200
// workflows run. Every workflow still succeeds, no user retry is spent on
// ClusterLost, and the first re-placed attempt runs elsewhere within the
// grace period + 5 s. Restarted, the lost cluster's orphaned task pods are
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
	replaced := make(chan time.Time, 1)
	var what string
	go func() {
		at, w := firstReplaced(watch, env)
		what = w
		replaced <- at
	}()
	killed := time.Now()
	if err := env.KillAPIServer(victim); err != nil {
		t.Fatal(err)
	}
	at := <-replaced
	if at.IsZero() {
		t.Fatal("no attempt was re-placed after the kill")
	}
	took := at.Sub(killed)
	t.Logf("kill of %s's kube-apiserver → first re-placed attempt running elsewhere after %s (%s); goal grace %s + 5s", victim, took.Round(time.Millisecond), what, grace)
	if took > grace+5*time.Second {
		t.Errorf("first re-placed attempt ran %s after the kill, goal %s", took, grace+5*time.Second)
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
