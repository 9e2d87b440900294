package executor

import (
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// TestNodeTimeoutBoundsTheWholeNode: a node's timeout counts from the
// node's start for every kind, asks for a round when it runs out, and then
// fails the node TimedOut with everything it still runs stopped. Rounds at
// 0 s, 10 s and 31 s; the timeout is 30 s.
func TestNodeTimeoutBoundsTheWholeNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		// inputs and tasks go before and after kindTasks, then nodes.
		inputs, tasks, nodes string
		answers              map[string][]plugins.PhaseInfo
		node                 string
		// stopped are the paths whose attempts must be aborted.
		stopped []string
		// never are paths that must not have run.
		never []string
	}{
		{name: "task", node: "a", stopped: []string{"a"}, nodes: `
nodes: [{name: a, task: sq, inputs: {x: 1}, timeout: 30s}]`},
		{name: "sub-workflow", node: "sub", stopped: []string{"sub/a"}, nodes: `
nodes:
- name: sub
  timeout: 30s
  workflow: {spec: {nodes: [{name: a, task: sq, inputs: {x: 1}}]}}`},
		{name: "branch to a task", node: "b", stopped: []string{"b/case-0"}, nodes: `
nodes:
- name: b
  timeout: 30s
  branch: {cases: [{if: "1 > 0", task: sq, inputs: {x: 1}}]}`},
		{name: "branch to a sub-workflow", node: "b", stopped: []string{"b/case-0/a"}, nodes: `
nodes:
- name: b
  timeout: 30s
  branch:
    cases:
    - if: "1 > 0"
      workflow: {spec: {nodes: [{name: a, task: sq, inputs: {x: 1}}]}}`},
		{name: "dynamic after its fragment started", node: "d", stopped: []string{"d/w"}, tasks: `
  gen: {outputs: {fragment: object}, container: {image: x, command: [sh]}}`, nodes: `
nodes: [{name: d, task: gen, dynamic: true, timeout: 30s}]`,
			answers: map[string][]plugins.PhaseInfo{"d": {ok(`{"fragment": {"nodes": [{"name": "w", "task": "sq", "inputs": {"x": 1}}]}}`)}}},
		{name: "sleep gate", node: "g", nodes: `
nodes: [{name: g, gate: {sleep: 1h}, timeout: 30s}]`},
		{name: "approve gate", node: "g", nodes: `
nodes: [{name: g, gate: {approve: {}}, timeout: 30s}]`},
		// Item 0 ends at 10 s and item 1 starts then: the map still
		// times out at 30 s, not 30 s after its last item started.
		{name: "map", node: "m", stopped: []string{"m/1"}, never: []string{"m/2"}, inputs: `inputs: {xs: {type: array, value: [1, 2, 3]}}`, nodes: `
nodes:
- {name: m, timeout: 30s, map: {task: sq, over: "{{workflow.inputs.xs}}", item: x, concurrency: 1}}`,
			answers: map[string][]plugins.PhaseInfo{"m/0": {{Phase: plugins.PhaseRunning}, ok(`{"y": 1}`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fp, clk, wf := setup(t, tc.inputs+kindTasks+tc.tasks+tc.nodes)
			for k, v := range tc.answers {
				fp.answers[k] = v
			}
			if res := step(t, e, wf); res.RequeueAfter != 30*time.Second {
				t.Fatalf("at 0s: RequeueAfter = %s, want the 30s the timeout leaves (node %+v)", res.RequeueAfter, wf.Status.Nodes[tc.node])
			}
			clk.Step(10 * time.Second)
			if res := step(t, e, wf); res.RequeueAfter != 20*time.Second {
				t.Fatalf("at 10s: RequeueAfter = %s, want the 20s the timeout leaves (node %+v)", res.RequeueAfter, wf.Status.Nodes[tc.node])
			}
			if p := wf.Status.Nodes[tc.node].Phase; p.IsTerminal() {
				t.Fatalf("at 10s node %s is already %s: %s", tc.node, p, wf.Status.Nodes[tc.node].Message)
			}
			clk.Step(21 * time.Second)
			step(t, e, wf)
			ns := wf.Status.Nodes[tc.node]
			if ns.Phase != v1alpha1.NodeFailed || ns.Reason != v1alpha1.ReasonTimedOut || !strings.Contains(ns.Message, "timeout of 30s") {
				t.Fatalf("at 31s node %s is %s/%s %q, want Failed/TimedOut naming the 30s timeout", tc.node, ns.Phase, ns.Reason, ns.Message)
			}
			for _, id := range tc.stopped {
				if c := wf.Status.Nodes[id]; !c.Phase.IsTerminal() || fp.aborted[id] != 1 {
					t.Errorf("%s is %s, aborted %d times; want it stopped once", id, c.Phase, fp.aborted[id])
				}
			}
			for _, id := range tc.never {
				if fp.handled[id] != 0 {
					t.Errorf("%s ran after the map timed out", id)
				}
			}
			if wf.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(wf.Status.Message, "timeout of 30s") {
				t.Fatalf("workflow %s %q, want Failed naming the timeout", wf.Status.Phase, wf.Status.Message)
			}
		})
	}
}

// TestSleepGateWithinItsTimeoutSucceedsSeenLate: a sleep shorter than
// the timeout ends the gate on time even when the round that sees it
// comes after the timeout (an engine that was down meanwhile).
func TestSleepGateWithinItsTimeoutSucceedsSeenLate(t *testing.T) {
	e, fp, clk, wf := setup(t, kindTasks+`
nodes: [{name: g, gate: {sleep: 30s}, timeout: 1m}, {name: a, task: sq, inputs: {x: 2}, dependsOn: [g]}]`)
	if res := step(t, e, wf); res.RequeueAfter != 30*time.Second {
		t.Fatalf("RequeueAfter = %s, want the 30s of the sleep", res.RequeueAfter)
	}
	clk.Step(2 * time.Minute)
	runUntilDone(t, e, fp, wf, squareAnswer)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || wf.Status.Nodes["g"].Phase != v1alpha1.NodeSucceeded {
		t.Fatalf("workflow %s (%s), gate %s; want both Succeeded", wf.Status.Phase, wf.Status.Message, wf.Status.Nodes["g"].Phase)
	}
}

// TestMapItemsHaveNoTimeoutOfTheirOwn: the map's timeout is not copied to
// its items; the task's own timeout still bounds each item's attempt.
func TestMapItemsHaveNoTimeoutOfTheirOwn(t *testing.T) {
	e, fp, clk, wf := setup(t, `inputs: {xs: {type: array, value: [1, 2]}}
tasks:
  sq: {inputs: {x: integer}, outputs: {y: integer}, timeout: 5s, container: {image: x, command: [sh]}}
nodes:
- {name: m, timeout: 1m, map: {task: sq, over: "{{workflow.inputs.xs}}", item: x}}`)
	if res := step(t, e, wf); res.RequeueAfter != 5*time.Second {
		t.Fatalf("RequeueAfter = %s, want the 5s the attempt timeout leaves", res.RequeueAfter)
	}
	clk.Step(6 * time.Second)
	step(t, e, wf)
	a := wf.Status.Nodes["m/0"].Attempts
	if len(a) != 1 || a[0].Reason != v1alpha1.ReasonTimedOut || !strings.Contains(a[0].Message, "attempt 0 timed out after 5s") || fp.aborted["m/0"] != 1 {
		t.Fatalf("m/0 attempts %+v (aborted %d), want the attempt timed out after 5s", a, fp.aborted["m/0"])
	}
}
