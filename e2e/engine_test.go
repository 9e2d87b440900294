package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins/pod"
)

func TestDiamondComputes81(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(env.RepoRoot, "docs", "examples", "diamond.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wf := waitDone(t, submit(t, namespace(t), string(src)), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("phase = %s (%s), want Succeeded", wf.Status.Phase, wf.Status.Message)
	}
	if got := string(wf.Status.Outputs["result"].Raw); got != "81" {
		t.Fatalf("result = %s, want 81", got)
	}
	for _, n := range []string{"a", "b"} {
		a := wf.Status.Nodes[n].Attempts
		if len(a) != 1 || a[0].Cluster == "" || a[0].Pod == "" {
			t.Errorf("node %s attempts = %+v, want one attempt with cluster and pod", n, a)
		}
	}
}

// failingDAG is 20 nodes: a chain s0..s4, a fan-out f0..f9 from s4, a
// fan-in j0..j4 over the fan. Node f3 exits 3, so every j node (all
// downstream of f3) must never start.
func failingDAG() string {
	var b strings.Builder
	b.WriteString(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: fail20}
spec:
  tasks:
    ok:
      inputs: {i: integer}
      outputs: {v: integer}
      container: {image: busybox, command: [sh, -c, 'echo "{\"v\": {{inputs.i}}}" > $ROTOR_OUTPUT_FILE']}
    boom:
      inputs: {i: integer}
      outputs: {v: integer}
      container: {image: busybox, command: [sh, -c, 'echo "disk on fire" >&2; echo "disk on fire" > $ROTOR_OUTPUT_FILE; exit 3']}
  nodes:
`)
	b.WriteString("  - {name: s0, task: ok, inputs: {i: 0}}\n")
	for i := 1; i < 5; i++ {
		fmt.Fprintf(&b, "  - {name: s%d, task: ok, inputs: {i: \"{{nodes.s%d.outputs.v}}\"}}\n", i, i-1)
	}
	for i := 0; i < 10; i++ {
		task := "ok"
		if i == 3 {
			task = "boom"
		}
		fmt.Fprintf(&b, "  - {name: f%d, task: %s, inputs: {i: \"{{nodes.s4.outputs.v}}\"}}\n", i, task)
	}
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&b, "  - {name: j%d, task: ok, inputs: {i: %d}, dependsOn: [f%d, f3]}\n", i, i, (i*2)%10)
	}
	return b.String()
}

func TestFailingNodeStopsDownstream(t *testing.T) {
	ns := namespace(t)
	wf := waitDone(t, submit(t, ns, failingDAG()), 90*time.Second)
	if len(wf.Spec.Nodes) != 20 {
		t.Fatalf("DAG has %d nodes, want 20", len(wf.Spec.Nodes))
	}
	if wf.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("phase = %s, want Failed", wf.Status.Phase)
	}
	for _, want := range []string{"node f3 failed", "code 3", "disk on fire"} {
		if !strings.Contains(wf.Status.Message, want) {
			t.Errorf("message %q does not contain %q", wf.Status.Message, want)
		}
	}
	for _, p := range env.TaskPods(t, ns, "") {
		if strings.HasPrefix(p.Labels[pod.LabelNode], "j") {
			t.Errorf("pod %s of downstream node %s was created", p.Name, p.Labels[pod.LabelNode])
		}
	}
	for i := 0; i < 5; i++ {
		st := wf.Status.Nodes[fmt.Sprintf("j%d", i)]
		if len(st.Attempts) != 0 || st.Phase != v1alpha1.NodeSkipped {
			t.Errorf("j%d: phase %s with %d attempts, want Skipped with none", i, st.Phase, len(st.Attempts))
		}
	}
	if st := wf.Status.Nodes["f3"]; st.Phase != v1alpha1.NodeFailed || st.Attempts[0].ExitCode == nil || *st.Attempts[0].ExitCode != 3 {
		t.Errorf("f3 = %+v, want Failed with exit code 3", st)
	}
}

func TestOutputTypeViolationFails(t *testing.T) {
	wf := waitDone(t, submit(t, namespace(t), `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: badout}
spec:
  tasks:
    liar:
      outputs: {y: integer}
      container: {image: busybox, command: [sh, -c, 'echo "{\"y\": \"nine\"}" > $ROTOR_OUTPUT_FILE']}
  nodes:
  - {name: a, task: liar}
`), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("phase = %s, want Failed", wf.Status.Phase)
	}
	want := `output "y": want an integer, got string "nine"`
	if !strings.Contains(wf.Status.Message, want) {
		t.Fatalf("message %q does not say %q", wf.Status.Message, want)
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	// The task fails until its third attempt. The process runtime runs
	// commands on this machine, so a counter file in the test's folder
	// survives from one attempt to the next.
	counter := filepath.Join(t.TempDir(), "count")
	wf := waitDone(t, submit(t, namespace(t), fmt.Sprintf(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: flaky}
spec:
  tasks:
    flaky:
      outputs: {n: integer}
      retries: 2
      container: {image: busybox, command: [sh, -c, 'n=$(( $(cat %[1]s 2>/dev/null || echo 0) + 1 )); echo $n > %[1]s; [ $n -ge 3 ] || exit 1; echo "{\"n\": $n}" > $ROTOR_OUTPUT_FILE']}
  nodes:
  - {name: a, task: flaky}
`, counter)), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("phase = %s (%s), want Succeeded", wf.Status.Phase, wf.Status.Message)
	}
	a := wf.Status.Nodes["a"].Attempts
	if len(a) != 3 || a[0].Phase != v1alpha1.NodeFailed || a[2].Phase != v1alpha1.NodeSucceeded {
		t.Fatalf("attempts = %+v, want failed, failed, succeeded", a)
	}
	if a[0].Pod == a[1].Pod || a[1].Pod == a[2].Pod {
		t.Fatalf("attempts reused a pod name: %s %s %s", a[0].Pod, a[1].Pod, a[2].Pod)
	}
}

func TestInvalidSpecCreatesNoPod(t *testing.T) {
	ns := namespace(t)
	wf := waitDone(t, submit(t, ns, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: cyclic}
spec:
  tasks:
    t: {outputs: {v: integer}, container: {image: x, command: ["true"]}}
  nodes:
  - {name: a, task: t, dependsOn: [b]}
  - {name: b, task: t, dependsOn: [a]}
`), 30*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowFailed || wf.Status.Reason != v1alpha1.ReasonInvalidSpec {
		t.Fatalf("phase/reason = %s/%s, want Failed/InvalidSpec", wf.Status.Phase, wf.Status.Reason)
	}
	if !strings.Contains(wf.Status.Message, "cycle") {
		t.Errorf("message %q does not mention the cycle", wf.Status.Message)
	}
	for i, tc := range env.Targets {
		pods, err := tc.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 0 {
			t.Errorf("target %d has %d pods for an invalid workflow", i+1, len(pods.Items))
		}
	}
}
