package dag

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
)

const diamond = `
inputs:
  n: {type: integer, value: 3}
tasks:
  square:
    inputs: {x: integer}
    outputs: {y: integer}
    container: {image: busybox, command: [sh, -c, 'echo {{inputs.x}}']}
nodes:
- {name: a, task: square, inputs: {x: "{{workflow.inputs.n}}"}}
- {name: b, task: square, inputs: {x: "{{nodes.a.outputs.y}}"}}
- {name: c, task: square, inputs: {x: "{{nodes.a.outputs.y}}"}}
- {name: d, task: square, inputs: {x: 4}, dependsOn: [b, c]}
outputs:
  result: "{{nodes.d.outputs.y}}"
`

func parse(t testing.TB, s string) *v1alpha1.WorkflowSpec {
	t.Helper()
	spec := &v1alpha1.WorkflowSpec{}
	if err := manifest.Unmarshal([]byte(s), spec); err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	return spec
}

func TestBuildDiamond(t *testing.T) {
	g, errs := Build(parse(t, diamond))
	if len(errs) > 0 {
		t.Fatalf("Build: %v", errs.ToAggregate())
	}
	if got := fmt.Sprint(g.Deps["d"]); got != "[b c]" {
		t.Errorf("deps of d = %s, want [b c]", got)
	}
	if got := fmt.Sprint(g.Children["a"]); got != "[b c]" {
		t.Errorf("children of a = %s, want [b c]", got)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct{ name, edit, old, want string }{
		{"unknown task", "task: squar", "task: square, inputs: {x: 4}", `spec.nodes[3].task: Not found: "squar (tasks: square)"`},
		{"unknown node ref", "{{nodes.z.outputs.y}}", "{{nodes.a.outputs.y}}", `no node "z"`},
		{"unknown output", "{{nodes.a.outputs.q}}", "{{nodes.a.outputs.y}}", `node a (task square) has no output "q" (outputs: y)`},
		{"unknown workflow input", "{{workflow.inputs.m}}", "{{workflow.inputs.n}}", `spec.nodes[0].inputs[x]: Invalid value: "\"{{workflow.inputs.m}}\"": {{workflow.inputs.m}}: no workflow input "m"`},
		{"literal type mismatch", `x: "four"`, "x: 4", `spec.nodes[3].inputs[x]: Invalid value: "\"four\"": want an integer, got string "four"`},
		{"bad expression", "{{nodes.a}}", "{{nodes.a.outputs.y}}", "bad reference {{nodes.a}}"},
		{"missing input", "inputs: {}, dependsOn", "inputs: {x: 4}, dependsOn", `spec.nodes[3].inputs[x]: Required value: task square needs input "x" (integer)`},
		{"undeclared input", "inputs: {x: 4, z: 1}", "inputs: {x: 4}", `task square declares no input "z"`},
		{"bad input value", "value: three", "value: 3", `spec.inputs[n].value: Invalid value`},
		{"cycle", "{name: a, task: square, inputs: {x: \"{{nodes.d.outputs.y}}\"}}", `{name: a, task: square, inputs: {x: "{{workflow.inputs.n}}"}}`, "the nodes form a cycle"},
		{"unknown dependsOn", "dependsOn: [b, e]", "dependsOn: [b, c]", `spec.nodes[3].dependsOn[1]: Not found: "e"`},
		{"task uses undeclared input", "echo {{inputs.w}}", "echo {{inputs.x}}", `spec.tasks[square].container.command[2]`},
		{"workflow output unknown node", `result: "{{nodes.e.outputs.y}}"`, `result: "{{nodes.d.outputs.y}}"`, `spec.outputs[result]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(diamond, tc.old, tc.edit, 1)
			if src == diamond {
				t.Fatalf("edit %q not applied", tc.old)
			}
			_, errs := Build(parse(t, src))
			if len(errs) == 0 {
				t.Fatalf("Build accepted an invalid spec")
			}
			if got := errs.ToAggregate().Error(); !strings.Contains(got, tc.want) {
				t.Fatalf("errors = %s\nwant one containing %s", got, tc.want)
			}
		})
	}
}

// TestRandomDAGs builds random graphs: edges only from later to earlier
// nodes must be accepted with exactly those dependencies; adding one back
// edge on a path must be reported as a cycle.
func TestRandomDAGs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 200; iter++ {
		n := 2 + rng.Intn(30)
		spec := &v1alpha1.WorkflowSpec{Tasks: map[string]v1alpha1.TaskTemplate{"t": {Container: &v1alpha1.ContainerSpec{Image: "x", Command: []string{"true"}}}}}
		want := map[string]string{}
		for i := 0; i < n; i++ {
			node := v1alpha1.Node{Name: fmt.Sprintf("n%d", i), Task: "t"}
			for j := 0; j < i; j++ {
				if rng.Intn(4) == 0 {
					node.DependsOn = append(node.DependsOn, fmt.Sprintf("n%d", j))
				}
			}
			want[node.Name] = fmt.Sprint(sortedCopy(node.DependsOn))
			spec.Nodes = append(spec.Nodes, node)
		}
		g, errs := Build(spec)
		if len(errs) > 0 {
			t.Fatalf("iteration %d: acyclic graph rejected: %v", iter, errs.ToAggregate())
		}
		for name, deps := range want {
			if got := fmt.Sprint(g.Deps[name]); got != deps {
				t.Fatalf("iteration %d: deps of %s = %s, want %s", iter, name, got, deps)
			}
		}
		// Close a cycle: the first node depends on a node that
		// (transitively) depends on it, or on the last node via a chain.
		last := spec.Nodes[n-1]
		if len(last.DependsOn) == 0 {
			continue
		}
		spec.Nodes[0].DependsOn = append(spec.Nodes[0].DependsOn, last.Name)
		if reaches(g, last.Name, "n0") {
			if _, errs := Build(spec); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), "cycle") {
				t.Fatalf("iteration %d: cycle through n0 and %s not reported: %v", iter, last.Name, errs)
			}
		}
	}
}

func reaches(g *Graph, from, to string) bool {
	if from == to {
		return true
	}
	for _, d := range g.Deps[from] {
		if reaches(g, d, to) {
			return true
		}
	}
	return false
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// FuzzBuild feeds arbitrary documents to the validator: it must never
// panic, and whatever it accepts must have a dependency for every edge it
// reports and no cycle.
func FuzzBuild(f *testing.F) {
	f.Add([]byte(diamond))
	f.Add([]byte("nodes: [{name: a, task: t, dependsOn: [a]}]\ntasks: {t: {container: {image: x}}}"))
	f.Add([]byte(`nodes: [{name: a, task: t, inputs: {x: "{{nodes.a.outputs.y}}"}}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec := &v1alpha1.WorkflowSpec{}
		if err := manifest.Unmarshal(data, spec); err != nil {
			return
		}
		g, errs := Build(spec)
		if len(errs) > 0 {
			return
		}
		for n, deps := range g.Deps {
			for _, d := range deps {
				if g.Nodes[d] == nil {
					t.Fatalf("node %s depends on unknown %s", n, d)
				}
			}
		}
		if c := g.findCycle(); c != nil {
			t.Fatalf("accepted a cycle: %v", c)
		}
	})
}
