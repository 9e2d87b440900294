package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// waitNode waits until node has an attempt in the given phase.
func waitNode(t *testing.T, wf *v1alpha1.Workflow, node string, phase v1alpha1.NodePhase) *v1alpha1.Workflow {
	t.Helper()
	var got *v1alpha1.Workflow
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		w, err := env.Rotor.RotorV1alpha1().Workflows(wf.Namespace).Get(ctx, wf.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = w
		return w.Status.Nodes[node].Phase == phase, nil
	})
	if err != nil {
		t.Fatalf("node %s never reached %s; status: %+v", node, phase, got.Status.Nodes[node])
	}
	return got
}

func podCount(t *testing.T, ns string) int {
	t.Helper()
	return len(env.TaskPods(t, ns, ""))
}

const sleeper = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: sleeper}
spec:
  tasks:
    nap: {container: {image: busybox, command: [sh, -c, "sleep 300"]}}
  nodes:
  - {name: a, task: nap}
  - {name: after, task: nap, dependsOn: [a]}
`

func TestAbortStopsRunningPods(t *testing.T) {
	ns := namespace(t)
	wf := waitNode(t, submit(t, ns, sleeper), "a", v1alpha1.NodeRunning)
	if out, code := rotorCLI(t, "abort", "-n", ns, wf.Name); code != 0 {
		t.Fatalf("rotor abort: exit %d: %s", code, out)
	}
	wf = waitDone(t, wf, 30*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowAborted || wf.Status.Nodes["a"].Phase != v1alpha1.NodeAborted || wf.Status.Nodes["after"].Phase != v1alpha1.NodeSkipped {
		t.Fatalf("workflow %s, a %s, after %s; want Aborted, Aborted, Skipped", wf.Status.Phase, wf.Status.Nodes["a"].Phase, wf.Status.Nodes["after"].Phase)
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		return podCount(t, ns) == 0, nil
	}); err != nil {
		t.Fatalf("%d pods still exist 20s after the abort", podCount(t, ns))
	}
}

func TestDeletedPodIsRetriedWithoutSpendingRetries(t *testing.T) {
	ns := namespace(t)
	wf := waitNode(t, submit(t, ns, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: survivor}
spec:
  tasks:
    slow:
      retries: 0
      outputs: {done: boolean}
      container: {image: busybox, command: [sh, -c, 'sleep 2; echo "{\"done\": true}" > $ROTOR_OUTPUT_FILE']}
  nodes:
  - {name: a, task: slow}
`), "a", v1alpha1.NodeRunning)
	pod, on := wf.Status.Nodes["a"].Attempts[0].Pod, wf.Status.Nodes["a"].Attempts[0].Cluster
	if err := env.Target(on).CoreV1().Pods(ns).Delete(context.Background(), pod, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s by hand: %v", pod, err)
	}
	wf = waitDone(t, wf, 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("phase %s (%s), want Succeeded though retries is 0", wf.Status.Phase, wf.Status.Message)
	}
	a := wf.Status.Nodes["a"].Attempts
	if len(a) != 2 || !a[0].System || a[0].Reason != "PodDeleted" || a[1].System {
		t.Fatalf("attempts %+v, want a system failure (PodDeleted) then a success", a)
	}
}

func TestDeletingWorkflowDeletesItsPods(t *testing.T) {
	ns := namespace(t)
	wf := waitNode(t, submit(t, ns, sleeper), "a", v1alpha1.NodeRunning)
	if n := podCount(t, ns); n != 1 {
		t.Fatalf("%d pods before delete, want 1", n)
	}
	ctx := context.Background()
	if err := env.Rotor.RotorV1alpha1().Workflows(ns).Delete(ctx, wf.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.Rotor.RotorV1alpha1().Workflows(ns).Get(ctx, wf.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) && podCount(t, ns) == 0, nil
	})
	if err != nil {
		t.Fatalf("workflow or its %d pods still there 30s after delete", podCount(t, ns))
	}
}

// TestEventsOnPhaseChanges: with the default event policy (failures), a
// failing workflow gets WorkflowFailed and NodeFailed Events and no Event
// for its start.
func TestEventsOnPhaseChanges(t *testing.T) {
	ns := namespace(t)
	wf := waitDone(t, submit(t, ns, failingDAG()), 60*time.Second)
	var reasons []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := env.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", wf.Name).String(),
		})
		if err != nil {
			return false, nil
		}
		reasons = reasons[:0]
		for _, e := range evs.Items {
			reasons = append(reasons, e.Reason)
		}
		s := strings.Join(reasons, ",")
		return strings.Contains(s, "WorkflowFailed") && strings.Contains(s, "NodeFailed"), nil
	})
	if err != nil {
		t.Fatalf("events %v, want WorkflowFailed and NodeFailed", reasons)
	}
	if slices.Contains(reasons, "WorkflowRunning") {
		t.Fatalf("events %v: a WorkflowRunning Event under the default policy (failures only)", reasons)
	}
}

func TestRelaunchRecoverRerunsOnlyTheFailedPart(t *testing.T) {
	ns := namespace(t)
	flag := filepath.Join(t.TempDir(), "fixed")
	wf := waitDone(t, submit(t, ns, fmt.Sprintf(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: fragile}
spec:
  tasks:
    ok: {inputs: {i: integer}, outputs: {v: integer}, container: {image: x, command: [sh, -c, 'echo "{\"v\": {{inputs.i}}}" > $ROTOR_OUTPUT_FILE']}}
    needs-fix: {inputs: {i: integer}, outputs: {v: integer}, container: {image: x, command: [sh, -c, '[ -f %s ] || exit 9; echo "{\"v\": {{inputs.i}}}" > $ROTOR_OUTPUT_FILE']}}
  nodes:
  - {name: a, task: ok, inputs: {i: 1}}
  - {name: b, task: needs-fix, inputs: {i: "{{nodes.a.outputs.v}}"}}
  - {name: c, task: ok, inputs: {i: "{{nodes.b.outputs.v}}"}}
  outputs: {c: "{{nodes.c.outputs.v}}"}
`, flag)), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("first run %s, want Failed at b", wf.Status.Phase)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := rotorCLI(t, "relaunch", wf.Name, "-n", ns, "--recover", "--wait")
	if code != 0 || !strings.Contains(out, "output c = 1") {
		t.Fatalf("rotor relaunch --recover: exit %d:\n%s", code, out)
	}
	list, err := env.Rotor.RotorV1alpha1().Workflows(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("want 2 workflows, got %d (%v)", len(list.Items), err)
	}
	for _, w := range list.Items {
		if w.Name == wf.Name {
			continue
		}
		if a := w.Status.Nodes["a"]; a.Reason != v1alpha1.ReasonRecovered || len(a.Attempts) != 0 || podsOf(t, &w) != 2 {
			t.Fatalf("relaunched run: a = %+v, %d pods; want a recovered and only b and c run", a, podsOf(t, &w))
		}
	}
}

// TestTTLDeletesFinishedWorkflows: a workflow with spec.ttl.afterSuccess
// is deleted that long after it succeeds, with its pods; one whose TTL
// is for failure only stays after succeeding; in a namespace annotated
// rotor.dev/ttl-after-failure, a failed workflow goes and a succeeded one
// stays.
func TestTTLDeletesFinishedWorkflows(t *testing.T) {
	ctx := context.Background()
	ns, annotated := namespace(t), namespace(t)
	n, err := env.Kube.CoreV1().Namespaces().Get(ctx, annotated, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Annotations = map[string]string{"rotor.dev/ttl-after-failure": "1s"}
	if _, err := env.Kube.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the propeller's namespace cache
	wfSrc := func(name, ttl, cmd string) string {
		return `
apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: ` + name + `}
spec:
  ` + ttl + `
  tasks:
    t: {container: {image: busybox, command: [sh, -ec, '` + cmd + `']}}
  nodes: [{name: a, task: t}]
`
	}
	short := waitDone(t, submit(t, ns, wfSrc("short", "ttl: {afterSuccess: 1s}", "true")), 60*time.Second)
	failOnly := waitDone(t, submit(t, ns, wfSrc("fail-only", "ttl: {afterFailure: 1s}", "true")), 60*time.Second)
	failed := waitDone(t, submit(t, annotated, wfSrc("failed", "", "exit 3")), 60*time.Second)
	kept := waitDone(t, submit(t, annotated, wfSrc("kept", "", "true")), 60*time.Second)
	for _, w := range []*v1alpha1.Workflow{short, failOnly, kept} {
		if w.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s: %s", w.Name, w.Status.Phase)
		}
	}
	if failed.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("failed: %s", failed.Status.Phase)
	}
	gone := func(w *v1alpha1.Workflow) bool {
		_, err := env.Rotor.RotorV1alpha1().Workflows(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !gone(short) || !gone(failed) {
		if time.Now().After(deadline) {
			t.Fatalf("30s after they ended: short gone %v, failed gone %v; want both deleted by their TTL", gone(short), gone(failed))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := podsOf(t, short); n != 0 {
		t.Fatalf("short's %d pods outlived it", n)
	}
	time.Sleep(2 * time.Second)
	if gone(failOnly) || gone(kept) {
		t.Fatalf("fail-only gone %v, kept gone %v: a TTL for the other outcome deleted them", gone(failOnly), gone(kept))
	}
}
