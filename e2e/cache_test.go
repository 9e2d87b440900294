package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins/pod"
)

const cachedWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  inputs: {n: {type: integer, value: 6}}
  tasks:
    square:
      inputs: {x: integer}
      outputs: {y: integer}
      cache: {version: v1, serialize: true}
      container: {image: busybox, command: [sh, -c, 'echo "{\"y\": $(( {{inputs.x}} * {{inputs.x}} ))}" > $ROTOR_OUTPUT_FILE']}
  nodes: [{name: a, task: square, inputs: {x: "{{workflow.inputs.n}}"}}]
  outputs: {y: "{{nodes.a.outputs.y}}"}
`

func podsOf(t *testing.T, wf *v1alpha1.Workflow) int {
	t.Helper()
	return len(env.TaskPods(t, wf.Namespace, pod.LabelWorkflowUID+"="+string(wf.UID)))
}

func TestCacheHitCreatesNoPod(t *testing.T) {
	ns := namespace(t)
	first := waitDone(t, submit(t, ns, strings.Replace(cachedWorkflow, "NAME", "first", 1)), 60*time.Second)
	if first.Status.Phase != v1alpha1.WorkflowSucceeded || podsOf(t, first) != 1 {
		t.Fatalf("first run: %s with %d pods", first.Status.Phase, podsOf(t, first))
	}
	second := waitDone(t, submit(t, ns, strings.Replace(cachedWorkflow, "NAME", "second", 1)), 60*time.Second)
	if second.Status.Phase != v1alpha1.WorkflowSucceeded || string(second.Status.Outputs["y"].Raw) != "36" {
		t.Fatalf("second run: %s, y = %s", second.Status.Phase, second.Status.Outputs["y"].Raw)
	}
	if n := podsOf(t, second); n != 0 || second.Status.Nodes["a"].Reason != "CacheHit" {
		t.Fatalf("second run created %d pods, node %+v; want a cache hit and none", n, second.Status.Nodes["a"])
	}
	out, code := rotorCLI(t, "cache", "ls", "-n", ns, "--etcd-endpoints", env.EtcdEndpoint)
	if code != 0 || !strings.Contains(out, "square") || !strings.Contains(out, ns+"/first/a") {
		t.Fatalf("rotor cache ls: exit %d:\n%s", code, out)
	}
	if out, code := rotorCLI(t, "cache", "ls", "-n", "someone-else", "--etcd-endpoints", env.EtcdEndpoint); code != 0 || strings.Contains(out, "square") {
		t.Fatalf("another tenant sees the cache: %s", out)
	}
	if out, code := rotorCLI(t, "cache", "rm", "square", "-n", ns, "--etcd-endpoints", env.EtcdEndpoint); code != 0 || !strings.Contains(out, "deleted 1") {
		t.Fatalf("rotor cache rm: exit %d: %s", code, out)
	}
	third := waitDone(t, submit(t, ns, strings.Replace(cachedWorkflow, "NAME", "third", 1)), 60*time.Second)
	if n := podsOf(t, third); third.Status.Phase != v1alpha1.WorkflowSucceeded || n != 1 {
		t.Fatalf("after rm: %s with %d pods, want a real run", third.Status.Phase, n)
	}
}

// TestApprovalGate: a node behind an approval gate does not start until
// the gate is answered, while the rest of the workflow goes on (a task
// beside the gate runs to the end first, so the engine demonstrably
// reconciled the workflow several times with the gate open); approving
// runs it, rejecting fails the workflow without running it.
// TestCacheKeysOnTheTaskDefinition: two workflows of one namespace, each
// with a cached task named square that computes something else, never
// reuse each other's outputs; one that differs only in retries and
// timeout does. rotor cache ls shows one entry per definition and rotor
// cache rm TASK deletes them all.
func TestCacheKeysOnTheTaskDefinition(t *testing.T) {
	ns := namespace(t)
	first := waitDone(t, submit(t, ns, strings.Replace(cachedWorkflow, "NAME", "squares", 1)), 60*time.Second)
	if first.Status.Phase != v1alpha1.WorkflowSucceeded || string(first.Status.Outputs["y"].Raw) != "36" {
		t.Fatalf("first run: %s, y = %s", first.Status.Phase, first.Status.Outputs["y"].Raw)
	}
	doubles := strings.Replace(strings.Replace(cachedWorkflow, "NAME", "doubles", 1), "{{inputs.x}} * {{inputs.x}}", "{{inputs.x}} + {{inputs.x}}", 1)
	second := waitDone(t, submit(t, ns, doubles), 60*time.Second)
	if second.Status.Phase != v1alpha1.WorkflowSucceeded || string(second.Status.Outputs["y"].Raw) != "12" || podsOf(t, second) != 1 {
		t.Fatalf("another task named square: %s, y = %s (want 12), %d pods (want 1), node %+v",
			second.Status.Phase, second.Status.Outputs["y"].Raw, podsOf(t, second), second.Status.Nodes["a"])
	}
	patient := strings.Replace(strings.Replace(cachedWorkflow, "NAME", "patient", 1), "      cache:", "      retries: 3\n      timeout: 5m\n      cache:", 1)
	third := waitDone(t, submit(t, ns, patient), 60*time.Second)
	if podsOf(t, third) != 0 || third.Status.Nodes["a"].Reason != "CacheHit" || string(third.Status.Outputs["y"].Raw) != "36" {
		t.Fatalf("square with other retries and timeout: %d pods, node %+v, y = %s; want a cache hit of 36",
			podsOf(t, third), third.Status.Nodes["a"], third.Status.Outputs["y"].Raw)
	}
	out, code := rotorCLI(t, "cache", "ls", "-n", ns, "--task", "square", "--etcd-endpoints", env.EtcdEndpoint)
	if code != 0 || strings.Count(out, "\nsquare ") != 2 || !strings.Contains(out, "DEFINITION") {
		t.Fatalf("rotor cache ls: exit %d, want two entries of square:\n%s", code, out)
	}
	if out, code := rotorCLI(t, "cache", "rm", "square", "-n", ns, "--etcd-endpoints", env.EtcdEndpoint); code != 0 || !strings.Contains(out, "deleted 2") {
		t.Fatalf("rotor cache rm: exit %d: %s", code, out)
	}
}

func TestApprovalGate(t *testing.T) {
	ns := namespace(t)
	src := `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    ship: {outputs: {done: boolean}, container: {image: x, command: [sh, -c, 'echo "{\"done\": true}" > $ROTOR_OUTPUT_FILE']}}
  nodes:
  - {name: review, gate: {approve: {message: "release v2?"}}}
  - {name: beside, task: ship}
  - {name: deploy, task: ship, dependsOn: [review]}
`
	for _, answer := range []string{"approve", "reject"} {
		wf := waitNode(t, submit(t, ns, strings.Replace(src, "NAME", answer+"d", 1)), "review", v1alpha1.NodeRunning)
		if msg := wf.Status.Nodes["review"].Message; !strings.Contains(msg, "release v2?") {
			t.Fatalf("gate message %q", msg)
		}
		wf = waitNode(t, wf, "beside", v1alpha1.NodeSucceeded)
		if ph := wf.Status.Nodes["review"].Phase; ph != v1alpha1.NodeRunning {
			t.Fatalf("the gate is %s before any answer", ph)
		}
		if st, ok := wf.Status.Nodes["deploy"]; (ok && len(st.Attempts) > 0) || podsOf(t, wf) != 1 {
			t.Fatalf("deploy started before the gate was answered: %+v, %d pods (want only beside's)", st, podsOf(t, wf))
		}
		if out, code := rotorCLI(t, answer, "-n", ns, wf.Name, "review"); code != 0 {
			t.Fatalf("rotor %s: %s", answer, out)
		}
		wf = waitDone(t, wf, 30*time.Second)
		want := map[string]v1alpha1.WorkflowPhase{"approve": v1alpha1.WorkflowSucceeded, "reject": v1alpha1.WorkflowFailed}[answer]
		if wf.Status.Phase != want {
			t.Fatalf("%s: workflow %s (%s), want %s", answer, wf.Status.Phase, wf.Status.Message, want)
		}
		wantPods := map[string]int{"approve": 2, "reject": 1}[answer]
		if n := podsOf(t, wf); n != wantPods {
			t.Fatalf("%s: %d task pods, want %d (beside's, and deploy's only if approved)", answer, n, wantPods)
		}
	}
}
