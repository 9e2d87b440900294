package executor

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

const kindTasks = `
tasks:
  sq: {inputs: {x: integer}, outputs: {y: integer}, container: {image: x, command: [sh]}}
  say: {inputs: {msg: string}, outputs: {text: string}, container: {image: x, command: [sh]}}
`

// runUntilDone steps rounds, answering every launched attempt with
// answer(id), until the workflow ends.
func runUntilDone(t *testing.T, e *Executor, fp *fakePlugin, wf *v1alpha1.Workflow, answer func(id string, inputs map[string]json.RawMessage) plugins.PhaseInfo) {
	t.Helper()
	for i := 0; i < 50 && !wf.Status.Phase.IsTerminal(); i++ {
		fp.script = answer
		step(t, e, wf)
	}
	if !wf.Status.Phase.IsTerminal() {
		t.Fatalf("workflow not done after 50 rounds: %+v", wf.Status.Nodes)
	}
}

func squareAnswer(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
	if x, ok := in["x"]; ok {
		var n int
		_ = json.Unmarshal(x, &n)
		return ok2(fmt.Sprintf(`{"y": %d}`, n*n))
	}
	var msg string
	_ = json.Unmarshal(in["msg"], &msg)
	b, _ := json.Marshal(map[string]string{"text": msg})
	return ok2(string(b))
}

func ok2(s string) plugins.PhaseInfo { return ok(s) }

func TestBranchTakesFirstMatchingCase(t *testing.T) {
	for _, tc := range []struct {
		n        int
		want     string
		taken    string
		skipped  []string
		wantFail string
	}{
		{n: 11, want: `"big"`, taken: "case-0", skipped: []string{"case-1", "else"}},
		{n: 4, want: `"medium"`, taken: "case-1", skipped: []string{"case-0", "else"}},
		{n: 1, want: `"small"`, taken: "else", skipped: []string{"case-0", "case-1"}},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			e, fp, _, wf := setup(t, fmt.Sprintf(`
inputs: {n: {type: integer, value: %d}}`+kindTasks+`
nodes:
- {name: a, task: sq, inputs: {x: "{{workflow.inputs.n}}"}}
- name: b
  branch:
    cases:
    - {if: "{{nodes.a.outputs.y}} > 100", task: say, inputs: {msg: big}}
    - {if: "{{nodes.a.outputs.y}} > 10", task: say, inputs: {msg: medium}}
    else: {task: say, inputs: {msg: small}}
outputs: {v: "{{nodes.b.outputs.text}}"}
`, tc.n))
			runUntilDone(t, e, fp, wf, squareAnswer)
			if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["v"].Raw) != tc.want {
				t.Fatalf("workflow %s (%s) output %s, want Succeeded with %s", wf.Status.Phase, wf.Status.Message, wf.Status.Outputs["v"].Raw, tc.want)
			}
			if p := wf.Status.Nodes["b/"+tc.taken].Phase; p != v1alpha1.NodeSucceeded {
				t.Errorf("taken case b/%s is %s", tc.taken, p)
			}
			for _, s := range tc.skipped {
				if p := wf.Status.Nodes["b/"+s].Phase; p != v1alpha1.NodeSkipped {
					t.Errorf("case b/%s is %s, want Skipped", s, p)
				}
				if fp.handled["b/"+s] != 0 {
					t.Errorf("case b/%s ran", s)
				}
			}
		})
	}
}

func TestBranchWithoutMatchNamesValues(t *testing.T) {
	e, fp, _, wf := setup(t, `inputs: {n: {type: integer, value: 2}}`+kindTasks+`
nodes:
- {name: a, task: sq, inputs: {x: "{{workflow.inputs.n}}"}}
- name: b
  branch:
    cases:
    - {if: "{{nodes.a.outputs.y}} > 100 && {{workflow.inputs.n}} != 3", task: say, inputs: {msg: big}}
`)
	runUntilDone(t, e, fp, wf, squareAnswer)
	if wf.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(wf.Status.Message, "no case matched and there is no else; the conditions saw nodes.a.outputs.y = 4") {
		t.Fatalf("workflow %s: %s", wf.Status.Phase, wf.Status.Message)
	}
}

func TestMapGathersInOrderWithConcurrency(t *testing.T) {
	e, fp, _, wf := setup(t, `inputs: {xs: {type: array, value: [1, 2, 3, 4, 5, 6, 7]}}`+kindTasks+`
nodes:
- name: m
  map: {task: sq, over: "{{workflow.inputs.xs}}", item: x, concurrency: 3}
outputs: {ys: "{{nodes.m.outputs.y}}"}
`)
	maxRunning := 0
	for i := 0; i < 50 && !wf.Status.Phase.IsTerminal(); i++ {
		// Items answer "running" on the round they launch, done the next.
		fp.script = func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
			if fp.handled[id] == 1 {
				return plugins.PhaseInfo{Phase: plugins.PhaseRunning}
			}
			return squareAnswer(id, in)
		}
		step(t, e, wf)
		running := 0
		for id, ns := range wf.Status.Nodes {
			if strings.HasPrefix(id, "m/") && (ns.Phase == v1alpha1.NodeRunning || ns.Phase == v1alpha1.NodeQueued) {
				running++
			}
		}
		maxRunning = max(maxRunning, running)
	}
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["ys"].Raw) != "[1,4,9,16,25,36,49]" {
		t.Fatalf("workflow %s (%s), ys = %s", wf.Status.Phase, wf.Status.Message, wf.Status.Outputs["ys"].Raw)
	}
	if maxRunning != 3 {
		t.Fatalf("at most %d items ran at once, want exactly the concurrency 3", maxRunning)
	}
}

func TestMapMinSuccessPercent(t *testing.T) {
	for _, tc := range []struct {
		pct      int
		failing  int
		wantOK   bool
		wantList string
	}{
		{pct: 75, failing: 1, wantOK: true, wantList: "[0,1,null,9]"},
		{pct: 75, failing: 2, wantOK: false},
		{pct: 100, failing: 1, wantOK: false},
	} {
		t.Run(fmt.Sprintf("%d%%-%dfail", tc.pct, tc.failing), func(t *testing.T) {
			e, fp, _, wf := setup(t, fmt.Sprintf(`inputs: {xs: {type: array, value: [0, 1, 2, 3]}}`+kindTasks+`
nodes:
- name: m
  map: {task: sq, over: "{{workflow.inputs.xs}}", item: x, minSuccessPercent: %d}
outputs: {ys: "{{nodes.m.outputs.y}}"}
`, tc.pct))
			runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
				if (id == "m/2") || (tc.failing == 2 && id == "m/3") {
					return fail(1, "bad item")
				}
				return squareAnswer(id, in)
			})
			if got := wf.Status.Phase == v1alpha1.WorkflowSucceeded; got != tc.wantOK {
				t.Fatalf("workflow %s (%s), want success=%v", wf.Status.Phase, wf.Status.Message, tc.wantOK)
			}
			if tc.wantOK && string(wf.Status.Outputs["ys"].Raw) != tc.wantList {
				t.Fatalf("ys = %s, want %s", wf.Status.Outputs["ys"].Raw, tc.wantList)
			}
			if !tc.wantOK && !strings.Contains(wf.Status.Message, "item 2: bad item") {
				t.Fatalf("message %q does not name the failing item", wf.Status.Message)
			}
		})
	}
}

func TestInlineSubWorkflow(t *testing.T) {
	e, fp, _, wf := setup(t, `inputs: {n: {type: integer, value: 2}}`+kindTasks+`
nodes:
- name: sub
  inputs: {v: "{{workflow.inputs.n}}"}
  workflow:
    spec:
      inputs: {v: {type: integer}}
      nodes:
      - {name: a, task: sq, inputs: {x: "{{workflow.inputs.v}}"}}
      - {name: b, task: sq, inputs: {x: "{{nodes.a.outputs.y}}"}}
      outputs: {out: "{{nodes.b.outputs.y}}"}
- {name: after, task: sq, inputs: {x: "{{nodes.sub.outputs.out}}"}}
outputs: {r: "{{nodes.after.outputs.y}}"}
`)
	runUntilDone(t, e, fp, wf, squareAnswer)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["r"].Raw) != "256" {
		t.Fatalf("workflow %s (%s), r = %s; want 256", wf.Status.Phase, wf.Status.Message, wf.Status.Outputs["r"].Raw)
	}
	for _, id := range []string{"sub/a", "sub/b"} {
		if wf.Status.Nodes[id].Phase != v1alpha1.NodeSucceeded {
			t.Errorf("%s is %s", id, wf.Status.Nodes[id].Phase)
		}
	}
}

type fakeTemplates map[string]*v1alpha1.WorkflowTemplate

func (f fakeTemplates) Get(ns, name string) (*v1alpha1.WorkflowTemplate, error) {
	if t, ok := f[ns+"/"+name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("workflowtemplate %q not found", name)
}

func TestWorkflowTemplateRef(t *testing.T) {
	e, fp, _, wf := setup(t, `
workflowTemplateRef: squarer
inputs: {n: {type: integer, value: 5}}
`)
	tpl := &v1alpha1.WorkflowTemplate{}
	tpl.Spec = parseSpec(t, `inputs: {n: {type: integer, value: 1}}`+kindTasks+`
nodes: [{name: a, task: sq, inputs: {x: "{{workflow.inputs.n}}"}}]
outputs: {y: "{{nodes.a.outputs.y}}"}
`)
	e.Templates = fakeTemplates{"ns/squarer": tpl}
	step(t, e, wf)
	tpl.Spec.Nodes = nil // edits after the start must not matter
	runUntilDone(t, e, fp, wf, squareAnswer)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["y"].Raw) != "25" {
		t.Fatalf("workflow %s (%s), y = %s; want 25", wf.Status.Phase, wf.Status.Message, wf.Status.Outputs["y"].Raw)
	}
	_, _, _, missing := setup(t, "workflowTemplateRef: nope\n")
	step(t, e, missing)
	if missing.Status.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(missing.Status.Message, `WorkflowTemplate ns/nope`) {
		t.Fatalf("missing template: %s %q", missing.Status.Reason, missing.Status.Message)
	}
}

func TestGates(t *testing.T) {
	t.Run("sleep", func(t *testing.T) {
		e, fp, clk, wf := setup(t, kindTasks+`
nodes: [{name: g, gate: {sleep: 30s}}, {name: a, task: sq, inputs: {x: 1}, dependsOn: [g]}]`)
		if res := step(t, e, wf); res.RequeueAfter != 30*time.Second || fp.handled["a"] != 0 {
			t.Fatalf("requeue %s, a handled %d; want 30s and a waiting", res.RequeueAfter, fp.handled["a"])
		}
		clk.Step(30 * time.Second)
		runUntilDone(t, e, fp, wf, squareAnswer)
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("workflow %s", wf.Status.Phase)
		}
	})
	for _, answer := range []string{"approve", "reject"} {
		t.Run(answer, func(t *testing.T) {
			e, fp, _, wf := setup(t, kindTasks+`
nodes: [{name: g, gate: {approve: {message: "ship it?"}}}, {name: a, task: sq, inputs: {x: 1}, dependsOn: [g]}]`)
			step(t, e, wf)
			if msg := wf.Status.Nodes["g"].Message; !strings.Contains(msg, "rotor approve wf g: ship it?") {
				t.Fatalf("gate message %q", msg)
			}
			wf.Spec.Approvals = map[string]string{"g": answer}
			runUntilDone(t, e, fp, wf, squareAnswer)
			want := map[string]v1alpha1.WorkflowPhase{"approve": v1alpha1.WorkflowSucceeded, "reject": v1alpha1.WorkflowFailed}[answer]
			if wf.Status.Phase != want {
				t.Fatalf("workflow %s, want %s", wf.Status.Phase, want)
			}
		})
	}
}

func TestDynamicFragment(t *testing.T) {
	e, fp, _, wf := setup(t, kindTasks+`
  gen: {inputs: {n: integer}, outputs: {fragment: object}, container: {image: x, command: [sh]}}
nodes:
- {name: d, task: gen, dynamic: true, inputs: {n: 3}}
outputs: {last: "{{nodes.d.outputs.last}}"}
`)
	runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
		if id == "d" {
			return ok(`{"fragment": {"nodes": [
				{"name": "w0", "task": "sq", "inputs": {"x": "{{workflow.inputs.n}}"}},
				{"name": "w1", "task": "sq", "inputs": {"x": "{{nodes.w0.outputs.y}}"}}],
				"outputs": {"last": "{{nodes.w1.outputs.y}}"}}}`)
		}
		return squareAnswer(id, in)
	})
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["last"].Raw) != "81" {
		t.Fatalf("workflow %s (%s), last = %s; want 81", wf.Status.Phase, wf.Status.Message, wf.Status.Outputs["last"].Raw)
	}
	e2, fp2, _, bad := setup(t, kindTasks+`
  gen: {outputs: {fragment: object}, container: {image: x, command: [sh]}}
nodes: [{name: d, task: gen, dynamic: true}]
`)
	runUntilDone(t, e2, fp2, bad, func(string, map[string]json.RawMessage) plugins.PhaseInfo {
		return ok(`{"fragment": {"nodes": [{"name": "w0", "task": "nope"}]}}`)
	})
	if bad.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(bad.Status.Message, "bad dynamic fragment") && !strings.Contains(bad.Status.Message, `nope`) {
		t.Fatalf("invalid fragment: %s %q", bad.Status.Phase, bad.Status.Message)
	}
}

func TestOnFailureRunsWithTheFailure(t *testing.T) {
	e, fp, _, wf := setup(t, kindTasks+`
nodes: [{name: a, task: sq, inputs: {x: 1}}]
onFailure: {name: report, task: say, inputs: {msg: "{{failure.node}}: {{failure.message}}"}}
`)
	runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
		if id == "a" {
			return fail(7, "exit 7")
		}
		return squareAnswer(id, in)
	})
	if got := string(fp.inputs["report"]["msg"]); got != `"a: exit 7"` {
		t.Fatalf("onFailure got msg %s", got)
	}
	if wf.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(wf.Status.Message, "onFailure node report ran") {
		t.Fatalf("workflow %s %q", wf.Status.Phase, wf.Status.Message)
	}
}

type fakeWorkflows map[string]*v1alpha1.Workflow

func (f fakeWorkflows) Get(ns, name string) (*v1alpha1.Workflow, error) {
	if w, ok := f[ns+"/"+name]; ok {
		return w, nil
	}
	return nil, fmt.Errorf("workflow %q not found", name)
}

func TestRecoverRerunsOnlyTheFailedPart(t *testing.T) {
	src := `inputs: {xs: {type: array, value: [1, 2, 3]}}` + kindTasks + `
nodes:
- {name: a, task: sq, inputs: {x: 2}}
- name: m
  map: {task: sq, over: "{{workflow.inputs.xs}}", item: x}
- {name: c, task: sq, inputs: {x: "{{nodes.a.outputs.y}}"}, dependsOn: [m]}
outputs: {c: "{{nodes.c.outputs.y}}"}
`
	e, fp, _, first := setup(t, src)
	runUntilDone(t, e, fp, first, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
		if id == "m/1" {
			return fail(1, "flaky item")
		}
		return squareAnswer(id, in)
	})
	if first.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("first run %s", first.Status.Phase)
	}
	e2, fp2, _, second := setup(t, src)
	second.Name, second.UID, second.Spec.RecoverFrom = "wf-2", "uid-2", "wf"
	e2.Workflows = fakeWorkflows{"ns/wf": first}
	runUntilDone(t, e2, fp2, second, squareAnswer)
	if second.Status.Phase != v1alpha1.WorkflowSucceeded || string(second.Status.Outputs["c"].Raw) != "16" {
		t.Fatalf("recovered run %s (%s), c = %s", second.Status.Phase, second.Status.Message, second.Status.Outputs["c"].Raw)
	}
	// m/2 never ran the first time: the map stopped at the failure of m/1.
	for id, want := range map[string]int{"a": 0, "m/0": 0, "m/1": 1, "m/2": 1, "c": 1} {
		if fp2.handled[id] != want {
			t.Errorf("%s ran %d times in the recovered run, want %d", id, fp2.handled[id], want)
		}
	}
	if *second.Status.Recovered != 2 || second.Status.Nodes["a"].Reason != v1alpha1.ReasonRecovered {
		t.Errorf("recovered %d nodes, a = %+v", *second.Status.Recovered, second.Status.Nodes["a"])
	}
}
