package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// TestNestedClusterSelectorPlacesItsTasks: a sub-workflow's
// clusterSelector places its tasks (with the workflow's selector too),
// not the tasks outside it.
func TestNestedClusterSelectorPlacesItsTasks(t *testing.T) {
	const label = "e2e.rotor.dev/zone"
	zoned := env.Env.Targets[1].Name
	mark := func(on bool) error {
		return env.EditCluster(context.Background(), zoned, func(c *v1alpha1.Cluster) {
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			delete(c.Labels, label)
			if on {
				c.Labels[label] = "b"
			}
		})
	}
	if err := mark(true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mark(false); err != nil {
			t.Errorf("remove label %s from %s: %v", label, zoned, err)
		}
	})
	ns := namespace(t)
	wf := waitDone(t, submit(t, ns, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: zoned}
spec:
  clusterSelector: {rotor.dev/runtime: process}
  tasks:
    ok: {inputs: {i: integer}, container: {image: busybox, command: [sh, -c, "true"]}}
  nodes:
  - name: sub
    workflow:
      spec:
        clusterSelector: {e2e.rotor.dev/zone: b}
        nodes: [{name: a0, task: ok, inputs: {i: 0}}, {name: a1, task: ok, inputs: {i: 1}}, {name: a2, task: ok, inputs: {i: 2}}]
`), 60*time.Second)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s (%s), want Succeeded", wf.Status.Phase, wf.Status.Message)
	}
	for _, id := range []string{"sub/a0", "sub/a1", "sub/a2"} {
		for _, a := range wf.Status.Nodes[id].Attempts {
			if a.Cluster != zoned {
				t.Errorf("%s attempt %d ran on %s, want %s, the only cluster labelled %s=b", id, a.Number, a.Cluster, zoned, label)
			}
		}
		if len(wf.Status.Nodes[id].Attempts) == 0 {
			t.Errorf("%s has no attempt", id)
		}
	}
}

// TestNestedOnFailureRuns: a sub-workflow's onFailure runs when it fails,
// with the failed node's path and message, before the workflow fails.
func TestNestedOnFailureRuns(t *testing.T) {
	ns := namespace(t)
	wf := waitDone(t, submit(t, ns, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: nested-onfailure}
spec:
  tasks:
    boom: {container: {image: busybox, command: [sh, -c, 'echo "disk on fire" > $ROTOR_OUTPUT_FILE; exit 3']}}
    report:
      inputs: {msg: string}
      outputs: {seen: string}
      container: {image: busybox, command: [sh, -c, 'printf "{\"seen\": \"%s\"}" "$ROTOR_INPUT_MSG" > $ROTOR_OUTPUT_FILE']}
  nodes:
  - name: sub
    workflow:
      spec:
        nodes: [{name: a, task: boom}]
        onFailure: {name: report, task: report, inputs: {msg: "{{failure.node}}"}}
`), 60*time.Second)
	sub, report := wf.Status.Nodes["sub"], wf.Status.Nodes["sub/report"]
	if wf.Status.Phase != v1alpha1.WorkflowFailed || sub.Phase != v1alpha1.NodeFailed {
		t.Fatalf("workflow %s, sub %s; want both Failed", wf.Status.Phase, sub.Phase)
	}
	if report.Phase != v1alpha1.NodeSucceeded || string(report.Outputs["seen"].Raw) != `"sub/a"` {
		t.Fatalf("sub/report %s (%s) with outputs %v, want Succeeded having seen sub/a", report.Phase, report.Message, report.Outputs)
	}
	if !strings.Contains(sub.Message, "onFailure node report ran") {
		t.Errorf("sub message %q does not say its onFailure ran", sub.Message)
	}
	if report.FinishedAt == nil || wf.Status.FinishedAt.Before(report.FinishedAt) {
		t.Errorf("workflow finished at %v, before its sub-workflow's onFailure (%v)", wf.Status.FinishedAt, report.FinishedAt)
	}
}
