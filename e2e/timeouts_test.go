package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// The pods of these tests sleep for 300 s and send no event after they
// start, and the propeller's resync is 30 s: a limit enforced within
// limitWait can only have been enforced by the round the engine asked for
// when the limit ran out.
const limitWait = 25 * time.Second

// hang is a task whose attempts never end on their own, hang-item the
// same for a map.
const hang = `    hang: {container: {image: busybox, command: [sh, -c, "sleep 300"]}}
    hang-item: {inputs: {item: integer}, container: {image: busybox, command: [sh, -c, "sleep 300"]}}
`

// waitPodGone waits until the pod of attempt a is deleted from its
// target cluster.
func waitPodGone(t *testing.T, ns, node string, a v1alpha1.Attempt) {
	t.Helper()
	c := env.Target(a.Cluster)
	if a.Pod == "" || c == nil {
		t.Fatalf("%s attempt %d has no pod on a known cluster: %+v", node, a.Number, a)
	}
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, a.Pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err == nil {
			last = p
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s of %s attempt %d still in %s 20s after it was stopped (phase %s, deleting since %v)", a.Pod, node, a.Number, a.Cluster, last.Status.Phase, last.DeletionTimestamp)
	}
}

// lastAttempt is the node's last attempt, failing the test if it has
// none.
func lastAttempt(t *testing.T, wf *v1alpha1.Workflow, node string) v1alpha1.Attempt {
	t.Helper()
	a := wf.Status.Nodes[node].Attempts
	if len(a) == 0 {
		t.Fatalf("node %s never had an attempt: %+v", node, wf.Status.Nodes[node])
	}
	return a[len(a)-1]
}

// TestAttemptTimeoutStopsEachAttempt: a task's timeout ends each attempt
// (its pod deleted) and the retry runs; when no retry is left the node
// fails TimedOut.
func TestAttemptTimeoutStopsEachAttempt(t *testing.T) {
	ns := namespace(t)
	wf := waitDone(t, submit(t, ns, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: attempt-timeout}
spec:
  tasks:
    hang: {retries: 1, timeout: 2s, container: {image: busybox, command: [sh, -c, "sleep 300"]}}
  nodes:
  - {name: a, task: hang}
`), limitWait)
	a := wf.Status.Nodes["a"]
	if wf.Status.Phase != v1alpha1.WorkflowFailed || a.Phase != v1alpha1.NodeFailed || a.Reason != v1alpha1.ReasonTimedOut {
		t.Fatalf("workflow %s, node a %s/%s (%s); want Failed, Failed/TimedOut", wf.Status.Phase, a.Phase, a.Reason, a.Message)
	}
	if want := "attempt 1 timed out after 2s (after 2 attempts)"; !strings.Contains(a.Message, want) {
		t.Errorf("node a message %q does not say %q", a.Message, want)
	}
	if len(a.Attempts) != 2 {
		t.Fatalf("a has %d attempts, want 2 (retries: 1): %+v", len(a.Attempts), a.Attempts)
	}
	for _, at := range a.Attempts {
		if at.Phase != v1alpha1.NodeFailed || at.Reason != v1alpha1.ReasonTimedOut || at.System {
			t.Errorf("attempt %d: %s/%s system=%v, want a Failed/TimedOut user failure", at.Number, at.Phase, at.Reason, at.System)
		}
		// Second-precision times: an attempt of 2 s shows at least 1 s.
		if d := at.FinishedAt.Sub(at.StartedAt.Time); d < time.Second {
			t.Errorf("attempt %d ended %s after it started, before its 2s timeout", at.Number, d)
		}
		waitPodGone(t, ns, "a", at)
	}
}

// TestNodeTimeoutStopsEverythingUnderIt: a node's timeout ends the whole
// node, whatever its kind: its attempts, its items, its nested DAG.
func TestNodeTimeoutStopsEverythingUnderIt(t *testing.T) {
	for _, tc := range []struct {
		name, node string
		// stopped are the paths whose running attempts the timeout ends.
		stopped []string
		nodes   string
	}{
		{name: "task", node: "a", stopped: []string{"a"}, nodes: `
  - {name: a, task: hang, timeout: 3s}`},
		{name: "sub-workflow", node: "sub", stopped: []string{"sub/a"}, nodes: `
  - name: sub
    timeout: 3s
    workflow: {spec: {nodes: [{name: a, task: hang}]}}`},
		{name: "map", node: "m", stopped: []string{"m/0", "m/1"}, nodes: `
  - {name: m, timeout: 3s, map: {task: hang-item, over: [1, 2]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			src := "apiVersion: rotor.dev/v1alpha1\nkind: Workflow\nmetadata: {name: node-timeout}\nspec:\n  tasks:\n" + hang + "  nodes:" + tc.nodes + "\n"
			wf := waitDone(t, submit(t, ns, src), limitWait)
			st := wf.Status.Nodes[tc.node]
			if wf.Status.Phase != v1alpha1.WorkflowFailed || st.Phase != v1alpha1.NodeFailed || st.Reason != v1alpha1.ReasonTimedOut {
				t.Fatalf("workflow %s, node %s %s/%s (%s); want Failed, Failed/TimedOut", wf.Status.Phase, tc.node, st.Phase, st.Reason, st.Message)
			}
			if !strings.Contains(st.Message, "the node ran longer than its timeout of 3s") || !strings.Contains(wf.Status.Message, "timeout of 3s") {
				t.Errorf("node message %q, workflow message %q; want both to name the 3s timeout", st.Message, wf.Status.Message)
			}
			if d := st.FinishedAt.Sub(st.StartedAt.Time); d < 2*time.Second {
				t.Errorf("node %s ended %s after it started, before its 3s timeout", tc.node, d)
			}
			for _, id := range tc.stopped {
				a := lastAttempt(t, wf, id)
				if a.Phase != v1alpha1.NodeAborted || a.Reason != v1alpha1.ReasonTimedOut {
					t.Errorf("%s attempt %d: %s/%s %q, want Aborted/TimedOut", id, a.Number, a.Phase, a.Reason, a.Message)
				}
				waitPodGone(t, ns, id, a)
			}
		})
	}
}

// TestActiveDeadlineStopsTheWorkflow: the workflow's activeDeadline ends
// it with everything it runs; a nested spec's activeDeadline ends the
// sub-workflow node that runs it.
func TestActiveDeadlineStopsTheWorkflow(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		// reasonOf is the node that must fail DeadlineExceeded, stopped
		// the one whose attempt the deadline ends.
		reasonOf, stopped string
	}{
		{name: "workflow", stopped: "a", reasonOf: "a", spec: `
  activeDeadline: 3s
  nodes:
  - {name: a, task: hang}
  - {name: b, task: hang, dependsOn: [a]}`},
		{name: "sub-workflow", stopped: "sub/a", reasonOf: "sub", spec: `
  nodes:
  - name: sub
    workflow: {spec: {activeDeadline: 3s, nodes: [{name: a, task: hang}]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			wf := waitDone(t, submit(t, ns, fmt.Sprintf("apiVersion: rotor.dev/v1alpha1\nkind: Workflow\nmetadata: {name: deadline}\nspec:\n  tasks:\n%s%s\n", hang, tc.spec)), limitWait)
			if wf.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(wf.Status.Message, "activeDeadline of 3s") {
				t.Fatalf("workflow %s (%s), want Failed naming the 3s activeDeadline", wf.Status.Phase, wf.Status.Message)
			}
			if tc.name == "workflow" {
				if wf.Status.Reason != v1alpha1.ReasonDeadline || wf.Status.Nodes["b"].Phase != v1alpha1.NodeSkipped {
					t.Errorf("workflow reason %s, b %s; want DeadlineExceeded and b Skipped", wf.Status.Reason, wf.Status.Nodes["b"].Phase)
				}
			}
			if r := wf.Status.Nodes[tc.reasonOf].Reason; r != v1alpha1.ReasonDeadline {
				t.Errorf("node %s reason %s, want DeadlineExceeded", tc.reasonOf, r)
			}
			a := lastAttempt(t, wf, tc.stopped)
			if a.Phase != v1alpha1.NodeAborted || a.Reason != v1alpha1.ReasonDeadline {
				t.Errorf("%s attempt %d: %s/%s %q, want Aborted/DeadlineExceeded", tc.stopped, a.Number, a.Phase, a.Reason, a.Message)
			}
			if d := wf.Status.FinishedAt.Sub(wf.Status.StartedAt.Time); d < 2*time.Second {
				t.Errorf("workflow ended %s after it started, before the 3s deadline", d)
			}
			waitPodGone(t, ns, tc.stopped, a)
		})
	}
}
