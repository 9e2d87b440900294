package dag

import (
	"strings"
	"testing"
)

const kindBase = `
inputs: {n: {type: integer, value: 3}, xs: {type: array, value: [1, 2]}}
tasks:
  sq: {inputs: {x: integer}, outputs: {y: integer}, container: {image: x, command: [sh]}}
  say: {inputs: {msg: string}, outputs: {text: string}, container: {image: x, command: [sh]}}
  gen: {outputs: {fragment: object}, container: {image: x, command: [sh]}}
  split: {outputs: {parts: directory}, container: {image: x, command: [sh]}}
  read: {inputs: {part: file}, outputs: {n: integer}, container: {image: x, command: [sh]}}
nodes:
- {name: a, task: sq, inputs: {x: "{{workflow.inputs.n}}"}}
`

func TestKindValidation(t *testing.T) {
	for _, tc := range []struct{ name, nodes, want string }{
		{"valid branch", `
- name: b
  branch:
    cases: [{if: "{{nodes.a.outputs.y}} > 1", task: say, inputs: {msg: hi}}]
    else: {task: say, inputs: {msg: lo}}
- {name: c, task: say, inputs: {msg: "{{nodes.b.outputs.text}}"}}`, ""},
		{"bad condition", `
- name: b
  branch: {cases: [{if: "{{nodes.a.outputs.y}} = 1", task: say, inputs: {msg: hi}}]}`, `spec.nodes[1].branch.cases[0].if`},
		{"condition reads unknown node", `
- name: b
  branch: {cases: [{if: "{{nodes.z.outputs.y}} > 1", task: say, inputs: {msg: hi}}]}`, `no node "z"`},
		{"branch output not in every case", `
- name: b
  branch:
    cases: [{if: "true", task: say, inputs: {msg: hi}}]
    else: {task: sq, inputs: {x: 1}}
- {name: c, task: say, inputs: {msg: "{{nodes.b.outputs.text}}"}}`, `node b (branch) has no output "text" (outputs: none)`},
		{"map outputs are arrays", `
- {name: m, map: {task: sq, over: "{{workflow.inputs.xs}}", item: x, concurrency: 2}}
- {name: s, task: say, inputs: {msg: "{{nodes.m.outputs.y}}"}}`, `type mismatch: {{nodes.m.outputs.y}} is array, the input wants string`},
		{"map over non-array", `
- {name: m, map: {task: sq, over: "{{workflow.inputs.n}}", item: x}}`, `spec.nodes[1].map.over: Invalid value: "\"{{workflow.inputs.n}}\"": type mismatch: {{workflow.inputs.n}} is integer, the input wants array`},
		{"map over a directory's files", `
- {name: s, task: split}
- {name: m, map: {task: read, over: "{{nodes.s.outputs.parts}}", item: part}}`, ""},
		{"map over a directory into a value input", `
- {name: s, task: split}
- {name: m, map: {task: sq, over: "{{nodes.s.outputs.parts}}", item: x}}`, `input "x" must be of type file, not integer`},
		{"map item not an input", `
- {name: m, map: {task: sq, over: "{{workflow.inputs.xs}}", item: z}}`, `task sq declares no input "z"`},
		{"two kinds", `
- {name: m, task: sq, gate: {sleep: 1s}}`, `exactly one of task, branch, map, workflow or gate`},
		{"gate needs one", `
- {name: g, gate: {}}`, `a gate needs exactly one of sleep and approve`},
		{"inline sub-workflow error has its path", `
- name: s
  workflow:
    spec:
      inputs: {v: {type: integer}}
      nodes: [{name: x, task: sq, inputs: {x: "{{workflow.inputs.w}}"}}]`, `spec.nodes[1].workflow.spec.nodes[0].inputs[x]`},
		{"sub-workflow required input", `
- name: s
  workflow:
    spec:
      inputs: {v: {type: integer}}
      nodes: [{name: x, task: sq, inputs: {x: "{{workflow.inputs.v}}"}}]`, `the sub-workflow needs input "v"`},
		{"dynamic needs fragment output", `
- {name: d, task: sq, dynamic: true, inputs: {x: 1}}`, `must declare the output "fragment" of type object`},
		{"valid dynamic", `
- {name: d, task: gen, dynamic: true}
- {name: e, task: sq, inputs: {x: "{{nodes.d.outputs.anything}}"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Build(parse(t, kindBase+tc.nodes))
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

func TestOnFailureValidation(t *testing.T) {
	for _, tc := range []struct{ onFailure, want string }{
		{`{name: r, task: say, inputs: {msg: "{{failure.node}} {{failure.message}}"}}`, ""},
		{`{name: r, task: say, inputs: {msg: "{{nodes.a.outputs.y}}"}}`, "onFailure may read workflow inputs and the failure"},
		{`{name: a, task: say, inputs: {msg: x}}`, `onFailure node "a" has the name of a node`},
	} {
		_, errs := Build(parse(t, kindBase+"onFailure: "+tc.onFailure+"\n"))
		got := errs.ToAggregate()
		if (tc.want == "") != (got == nil) || (got != nil && !strings.Contains(got.Error(), tc.want)) {
			t.Errorf("onFailure %s: errors %v, want %q", tc.onFailure, got, tc.want)
		}
	}
	_, errs := Build(parse(t, kindBase+`- {name: z, task: say, inputs: {msg: "{{failure.node}}"}}`))
	if errs == nil || !strings.Contains(errs.ToAggregate().Error(), "only onFailure may read the failure") {
		t.Errorf("failure ref outside onFailure: %v", errs)
	}
}
