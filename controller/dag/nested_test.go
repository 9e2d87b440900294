package dag

import (
	"strings"
	"testing"
)

// TestNestedSpecFields: a nested spec may bound itself (activeDeadline),
// place its tasks (clusterSelector, combined with every enclosing one) and
// handle its failure (onFailure); fields only a Workflow's own spec can
// mean are rejected with their path, and so is a clusterSelector that
// contradicts an enclosing one.
func TestNestedSpecFields(t *testing.T) {
	const outer = kindBase + `- name: s
  workflow:
    spec:
`
	for _, tc := range []struct{ name, spec, want string }{
		{"bounds, placement and onFailure are kept", `
      activeDeadline: 1m
      clusterSelector: {gpu: "true"}
      parallelism: 2
      nodes: [{name: x, task: sq, inputs: {x: 1}}]
      onFailure: {name: r, task: say, inputs: {msg: "{{failure.node}}"}}`, ""},
		{"abort", `
      abort: true
      nodes: [{name: x, task: sq, inputs: {x: 1}}]`, `spec.nodes[1].workflow.spec.abort: Invalid value: true: only a Workflow can be aborted (rotor abort WORKFLOW stops its sub-workflows too)`},
		{"approvals", `
      approvals: {g: approve}
      nodes: [{name: g, gate: {approve: {}}}]`, `spec.nodes[1].workflow.spec.approvals: Invalid value: "g": approvals are given on the Workflow, by the gate's path (rotor approve WORKFLOW NODE/GATE)`},
		{"recoverFrom", `
      recoverFrom: old
      nodes: [{name: x, task: sq, inputs: {x: 1}}]`, `spec.nodes[1].workflow.spec.recoverFrom: Invalid value: "old": only a Workflow recovers from an earlier one`},
		{"workflowTemplateRef", `
      workflowTemplateRef: t
      nodes: [{name: x, task: sq, inputs: {x: 1}}]`, `spec.nodes[1].workflow.spec.workflowTemplateRef: Invalid value: "t": a nested workflow runs a template with a node's workflow.templateRef`},
		{"selector contradicts the workflow's", `
      clusterSelector: {region: us}
      nodes: [{name: x, task: sq, inputs: {x: 1}}]`, `spec.nodes[1].workflow.spec.clusterSelector[region]: Invalid value: "us": region=us contradicts region=eu of an enclosing clusterSelector: no cluster could run these tasks`},
		{"selector contradicts one two levels up", `
      clusterSelector: {gpu: "true"}
      nodes:
      - name: inner
        workflow: {spec: {clusterSelector: {region: us}, nodes: [{name: x, task: sq, inputs: {x: 1}}]}}`, `spec.nodes[1].workflow.spec.nodes[0].workflow.spec.clusterSelector[region]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Build(parse(t, "clusterSelector: {region: eu}\n"+outer+tc.spec))
			got := errs.ToAggregate()
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("valid spec rejected: %v", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Fatalf("errors = %v\nwant one containing %s", got, tc.want)
			}
		})
	}
}

// TestTemplateRefWorkflowFields: a workflow that runs a template may bound
// and place it (activeDeadline, clusterSelector, with the template's own)
// but takes its DAG from it: outputs, parallelism and onFailure of its own
// would be ignored, so they are rejected.
func TestTemplateRefWorkflowFields(t *testing.T) {
	for _, tc := range []struct{ name, spec, want string }{
		{"bounds and placement", "activeDeadline: 1m\nclusterSelector: {gpu: \"true\"}\ninputs: {x: {type: integer, value: 1}}", ""},
		{"outputs", `outputs: {y: "{{nodes.pow.outputs.y}}"}`, `spec.outputs: Invalid value: "y": a workflow that runs a template takes its outputs from the template`},
		{"parallelism", "parallelism: 2", `spec.parallelism: Invalid value: 2: a workflow that runs a template takes its parallelism from the template`},
		{"onFailure", "onFailure: {name: r, task: say}", `spec.onFailure: Invalid value: "r": a workflow that runs a template takes its onFailure from the template`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Build(parse(t, "workflowTemplateRef: power\n"+tc.spec))
			got := errs.ToAggregate()
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("valid spec rejected: %v", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Fatalf("errors = %v\nwant one containing %s", got, tc.want)
			}
		})
	}
}
