package executor

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// selectors is one cluster that records the workflow selector each node's
// attempt was placed with.
type selectors struct {
	oneCluster
	got map[string]map[string]string
}

func (s *selectors) Pick(id plugins.TaskID, task *v1alpha1.TaskTemplate, sel map[string]string) (*plugins.Cluster, error) {
	s.got[id.Node] = maps.Clone(sel)
	return s.c, nil
}

func recordSelectors(e *Executor) *selectors {
	s := &selectors{oneCluster: oneCluster{&plugins.Cluster{Name: "c1"}}, got: map[string]map[string]string{}}
	e.Clusters = s
	return s
}

func workflowTemplate(t *testing.T, src string) *v1alpha1.WorkflowTemplate {
	t.Helper()
	return &v1alpha1.WorkflowTemplate{Spec: parseSpec(t, src)}
}

// TestNestedActiveDeadlineBoundsTheNode: a nested spec's activeDeadline,
// inline or from a template, bounds the sub-workflow node from its start.
func TestNestedActiveDeadlineBoundsTheNode(t *testing.T) {
	for _, tc := range []struct{ name, nodes string }{
		{"inline", `
nodes:
- name: sub
  workflow: {spec: {activeDeadline: 30s, nodes: [{name: a, task: sq, inputs: {x: 1}}]}}`},
		{"templateRef", `
nodes:
- {name: sub, workflow: {templateRef: slow}}`},
		{"branch target", `
nodes:
- name: sub
  branch:
    cases: [{if: "1 > 0", workflow: {templateRef: slow}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fp, clk, wf := setup(t, kindTasks+tc.nodes)
			e.Templates = fakeTemplates{"ns/slow": workflowTemplate(t, kindTasks+`
activeDeadline: 30s
nodes: [{name: a, task: sq, inputs: {x: 1}}]`)}
			if res := step(t, e, wf); res.RequeueAfter != 30*time.Second {
				t.Fatalf("RequeueAfter = %s, want the 30s the nested activeDeadline leaves", res.RequeueAfter)
			}
			clk.Step(31 * time.Second)
			step(t, e, wf)
			if wf.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(wf.Status.Message, "activeDeadline of 30s") {
				t.Fatalf("workflow %s %q, want Failed naming the nested activeDeadline", wf.Status.Phase, wf.Status.Message)
			}
			for id, ns := range wf.Status.Nodes {
				if strings.HasSuffix(id, "/a") && (ns.Phase != v1alpha1.NodeAborted || fp.aborted[id] != 1) {
					t.Errorf("%s is %s, aborted %d times; want it stopped once", id, ns.Phase, fp.aborted[id])
				}
			}
		})
	}
}

// TestTemplateRefWorkflowKeepsTheTemplatesBounds: a workflow that runs a
// WorkflowTemplate is bounded by the template's activeDeadline and the
// workflow's, whichever ends first, and places tasks with both
// clusterSelectors.
func TestTemplateRefWorkflowKeepsTheTemplatesBounds(t *testing.T) {
	for _, tc := range []struct {
		name, own string
		want      time.Duration
	}{
		{"template only", "", 30 * time.Second},
		{"template first", "activeDeadline: 1m\n", 30 * time.Second},
		{"workflow first", "activeDeadline: 10s\n", 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, clk, wf := setup(t, "workflowTemplateRef: tpl\nclusterSelector: {region: eu}\n"+tc.own)
			e.Templates = fakeTemplates{"ns/tpl": workflowTemplate(t, kindTasks+`
activeDeadline: 30s
clusterSelector: {gpu: "true"}
nodes: [{name: a, task: sq, inputs: {x: 1}}]`)}
			picks := recordSelectors(e)
			if res := step(t, e, wf); res.RequeueAfter != tc.want {
				t.Fatalf("RequeueAfter = %s, want %s", res.RequeueAfter, tc.want)
			}
			if got := picks.got["a"]; !maps.Equal(got, map[string]string{"region": "eu", "gpu": "true"}) {
				t.Errorf("a placed with selector %v, want the workflow's and the template's", got)
			}
			clk.Step(tc.want + time.Second)
			step(t, e, wf)
			if wf.Status.Phase != v1alpha1.WorkflowFailed || wf.Status.Reason != v1alpha1.ReasonDeadline {
				t.Fatalf("workflow %s/%s %q, want Failed/DeadlineExceeded", wf.Status.Phase, wf.Status.Reason, wf.Status.Message)
			}
		})
	}
}

// TestNestedClusterSelectorCombines: the tasks of a nested spec are
// placed with its clusterSelector and every enclosing one; a pair that
// contradicts an enclosing one fails the node, naming both.
func TestNestedClusterSelectorCombines(t *testing.T) {
	e, fp, _, wf := setup(t, kindTasks+`
clusterSelector: {region: eu}
nodes:
- {name: top, task: sq, inputs: {x: 1}}
- name: sub
  workflow:
    spec:
      clusterSelector: {gpu: "true"}
      nodes:
      - {name: a, task: sq, inputs: {x: 1}}
      - name: inner
        workflow: {spec: {clusterSelector: {zone: b}, nodes: [{name: b, task: sq, inputs: {x: 1}}]}}
- {name: ref, workflow: {templateRef: us}}
`)
	e.Templates = fakeTemplates{"ns/us": workflowTemplate(t, kindTasks+`
clusterSelector: {region: us}
nodes: [{name: a, task: sq, inputs: {x: 1}}]`)}
	picks := recordSelectors(e)
	step(t, e, wf)
	for id, want := range map[string]map[string]string{
		"top":         {"region": "eu"},
		"sub/a":       {"region": "eu", "gpu": "true"},
		"sub/inner/b": {"region": "eu", "gpu": "true", "zone": "b"},
	} {
		if got := picks.got[id]; !maps.Equal(got, want) {
			t.Errorf("%s placed with %v, want %v", id, got, want)
		}
	}
	ref := wf.Status.Nodes["ref"]
	if ref.Phase != v1alpha1.NodeFailed || ref.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(ref.Message, "region=us") || !strings.Contains(ref.Message, "region=eu") || fp.handled["ref/a"] != 0 {
		t.Fatalf("ref: %s/%s %q (a handled %d); want Failed/InvalidSpec naming region=us and region=eu, nothing run", ref.Phase, ref.Reason, ref.Message, fp.handled["ref/a"])
	}
}

// TestNestedOnFailureRunsWhenTheSubWorkflowFails: the nested DAG's
// running nodes stop, its onFailure runs with the failure, and only then
// does the sub-workflow node (and the workflow) fail.
func TestNestedOnFailureRunsWhenTheSubWorkflowFails(t *testing.T) {
	e, fp, _, wf := setup(t, kindTasks+`
nodes:
- name: sub
  workflow:
    spec:
      nodes: [{name: a, task: sq, inputs: {x: 1}}, {name: slow, task: sq, inputs: {x: 2}}]
      onFailure: {name: report, task: say, inputs: {msg: "{{failure.node}}: {{failure.message}}"}}
- {name: after, task: sq, inputs: {x: 1}, dependsOn: [sub]}
`)
	fp.answers["sub/a"] = []plugins.PhaseInfo{fail(7, "exit 7")}
	fp.answers["sub/report"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}, ok(`{"text": "sent"}`)}
	step(t, e, wf)
	if got := string(fp.inputs["sub/report"]["msg"]); got != `"sub/a: exit 7"` {
		t.Fatalf("nested onFailure got msg %s (ran %d times), want \"sub/a: exit 7\"", got, fp.handled["sub/report"])
	}
	if sub := wf.Status.Nodes["sub"]; sub.Phase != v1alpha1.NodeRunning || wf.Status.Phase != v1alpha1.WorkflowRunning {
		t.Fatalf("while onFailure runs: sub %s, workflow %s; want both Running", sub.Phase, wf.Status.Phase)
	}
	if slow := wf.Status.Nodes["sub/slow"]; slow.Phase != v1alpha1.NodeAborted || fp.aborted["sub/slow"] != 1 {
		t.Fatalf("sub/slow %s (aborted %d), want stopped when the sub-workflow failed", slow.Phase, fp.aborted["sub/slow"])
	}
	step(t, e, wf)
	sub := wf.Status.Nodes["sub"]
	if sub.Phase != v1alpha1.NodeFailed || !strings.Contains(sub.Message, "node sub/a failed: exit 7") || !strings.Contains(sub.Message, "onFailure node report ran") {
		t.Fatalf("sub %s %q, want Failed naming sub/a and the onFailure run", sub.Phase, sub.Message)
	}
	if wf.Status.Phase != v1alpha1.WorkflowFailed || wf.Status.Nodes["after"].Phase != v1alpha1.NodeSkipped {
		t.Fatalf("workflow %s, after %s; want Failed and Skipped", wf.Status.Phase, wf.Status.Nodes["after"].Phase)
	}
}

// TestDeadlineStopsARunningOnFailure: the workflow's activeDeadline
// bounds its onFailure node too.
func TestDeadlineStopsARunningOnFailure(t *testing.T) {
	e, fp, clk, wf := setup(t, kindTasks+`
activeDeadline: 1m
nodes: [{name: a, task: sq, inputs: {x: 1}}]
onFailure: {name: report, task: say, inputs: {msg: x}}
`)
	fp.answers["a"] = []plugins.PhaseInfo{fail(1, "x")}
	step(t, e, wf)
	if r := wf.Status.Nodes["report"]; r.Phase != v1alpha1.NodeRunning {
		t.Fatalf("report %s, want Running", r.Phase)
	}
	clk.Step(61 * time.Second)
	step(t, e, wf)
	if r := wf.Status.Nodes["report"]; r.Phase != v1alpha1.NodeAborted || fp.aborted["report"] != 1 || wf.Status.Reason != v1alpha1.ReasonDeadline {
		t.Fatalf("report %s (aborted %d), workflow %s; want report stopped by the deadline", r.Phase, fp.aborted["report"], wf.Status.Reason)
	}
}

// TestNestedSpecFieldsOnlyAWorkflowHas: fields a nested spec cannot mean
// fail the node with their name when they come from a template (inline
// specs are rejected by validation before that), and fail a workflow that
// runs such a template.
func TestNestedSpecFieldsOnlyAWorkflowHas(t *testing.T) {
	for _, field := range []string{"abort: true", "approvals: {a: approve}", "recoverFrom: old"} {
		name, _, _ := strings.Cut(field, ":")
		tpl := kindTasks + field + "\nnodes: [{name: a, task: sq, inputs: {x: 1}}]"
		t.Run(name+" in a sub-workflow", func(t *testing.T) {
			e, fp, _, wf := setup(t, kindTasks+"nodes: [{name: sub, workflow: {templateRef: tpl}}]\n")
			e.Templates = fakeTemplates{"ns/tpl": workflowTemplate(t, tpl)}
			step(t, e, wf)
			sub := wf.Status.Nodes["sub"]
			if sub.Phase != v1alpha1.NodeFailed || sub.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(sub.Message, name) || fp.handled["sub/a"] != 0 {
				t.Fatalf("sub %s/%s %q, a handled %d; want Failed/InvalidSpec naming %s, nothing run", sub.Phase, sub.Reason, sub.Message, fp.handled["sub/a"], name)
			}
		})
		t.Run(name+" in the workflow's template", func(t *testing.T) {
			e, fp, _, wf := setup(t, "workflowTemplateRef: tpl\n")
			e.Templates = fakeTemplates{"ns/tpl": workflowTemplate(t, tpl)}
			step(t, e, wf)
			if wf.Status.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(wf.Status.Message, "template.tpl.spec."+name) || fp.handled["a"] != 0 {
				t.Fatalf("workflow %s/%s %q, a handled %d; want Failed/InvalidSpec naming %s, nothing run", wf.Status.Phase, wf.Status.Reason, wf.Status.Message, fp.handled["a"], name)
			}
		})
	}
}

// TestTemplateRefWorkflowOwnDAGFieldsFail: the engine, too, rejects the
// fields a workflow that runs a template would see ignored.
func TestTemplateRefWorkflowOwnDAGFieldsFail(t *testing.T) {
	e, fp, _, wf := setup(t, "workflowTemplateRef: tpl\nparallelism: 2\n")
	e.Templates = fakeTemplates{"ns/tpl": workflowTemplate(t, kindTasks+"nodes: [{name: a, task: sq, inputs: {x: 1}}]")}
	step(t, e, wf)
	if wf.Status.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(wf.Status.Message, "spec.parallelism") || fp.handled["a"] != 0 {
		t.Fatalf("workflow %s/%s %q, a handled %d; want Failed/InvalidSpec naming spec.parallelism, nothing run", wf.Status.Phase, wf.Status.Reason, wf.Status.Message, fp.handled["a"])
	}
}
