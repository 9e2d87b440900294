// Package dag validates a WorkflowSpec and derives its dependency graph.
// It is pure: no clients, no clocks. Every error names the field path of
// the problem (spec.nodes[1].inputs.x) so users can find it.
package dag

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/controller/values"
)

// Graph is a validated workflow's DAG. Node order is the spec's order.
type Graph struct {
	Order []string
	// Deps maps a node to the nodes it waits for, sorted.
	Deps map[string][]string
	// Children maps a node to the nodes that wait for it, sorted.
	Children map[string][]string
	Nodes    map[string]*v1alpha1.Node
}

// Build validates spec and returns its graph, or every problem found.
func Build(spec *v1alpha1.WorkflowSpec) (*Graph, field.ErrorList) {
	root := field.NewPath("spec")
	errs := validateInputs(spec, root.Child("inputs"))
	errs = append(errs, validateTasks(spec, root.Child("tasks"))...)
	g := &Graph{Deps: map[string][]string{}, Children: map[string][]string{}, Nodes: map[string]*v1alpha1.Node{}}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		p := root.Child("nodes").Index(i)
		if _, dup := g.Nodes[n.Name]; dup {
			errs = append(errs, field.Duplicate(p.Child("name"), n.Name))
			continue
		}
		if n.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "every node needs a name"))
			continue
		}
		g.Nodes[n.Name] = n
		g.Order = append(g.Order, n.Name)
	}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		if g.Nodes[n.Name] != n {
			continue
		}
		deps, nerrs := validateNode(spec, g, n, root.Child("nodes").Index(i))
		errs = append(errs, nerrs...)
		g.Deps[n.Name] = deps
		for _, d := range deps {
			g.Children[d] = append(g.Children[d], n.Name)
		}
	}
	for k := range g.Children {
		sort.Strings(g.Children[k])
	}
	errs = append(errs, validateOutputs(spec, g, root.Child("outputs"))...)
	if len(errs) == 0 {
		if cycle := g.findCycle(); cycle != nil {
			errs = append(errs, field.Invalid(root.Child("nodes"), strings.Join(cycle, " -> "), "the nodes form a cycle"))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return g, nil
}

func validateInputs(spec *v1alpha1.WorkflowSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedKeys(spec.Inputs) {
		in := spec.Inputs[name]
		if in.Value == nil {
			errs = append(errs, field.Required(p.Key(name).Child("value"), "a workflow input needs a value"))
			continue
		}
		if err := values.Check(in.Type, in.Value.Raw); err != nil {
			errs = append(errs, field.Invalid(p.Key(name).Child("value"), string(in.Value.Raw), err.Error()))
		}
	}
	return errs
}

func validateTasks(spec *v1alpha1.WorkflowSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedKeys(spec.Tasks) {
		t := spec.Tasks[name]
		tp := p.Key(name)
		kind := TaskType(&t)
		if kind == "pod" && t.Container == nil {
			errs = append(errs, field.Required(tp.Child("container"), "a pod task needs a container"))
			continue
		}
		if t.Container == nil {
			continue
		}
		check := func(s string, fp *field.Path) {
			tpl, err := template.Parse(s)
			if err != nil {
				errs = append(errs, field.Invalid(fp, s, err.Error()))
				return
			}
			for _, r := range tpl.Refs() {
				if r.Kind != template.TaskInput {
					errs = append(errs, field.Invalid(fp, s, fmt.Sprintf("{{%s}}: a task may only use its own inputs ({{inputs.NAME}})", r)))
				} else if _, ok := t.Inputs[r.Name]; !ok {
					errs = append(errs, field.Invalid(fp, s, fmt.Sprintf("{{%s}}: the task declares no input %q (declared: %s)", r, r.Name, keyList(t.Inputs))))
				}
			}
		}
		for i, s := range t.Container.Command {
			check(s, tp.Child("container", "command").Index(i))
		}
		for i, s := range t.Container.Args {
			check(s, tp.Child("container", "args").Index(i))
		}
	}
	return errs
}

// TaskType is the plugin a task runs with: its type, or "pod" by default.
func TaskType(t *v1alpha1.TaskTemplate) string {
	if t.Type != "" {
		return t.Type
	}
	return "pod"
}

func validateNode(spec *v1alpha1.WorkflowSpec, g *Graph, n *v1alpha1.Node, p *field.Path) ([]string, field.ErrorList) {
	var errs field.ErrorList
	deps := map[string]bool{}
	task, ok := spec.Tasks[n.Task]
	if !ok {
		errs = append(errs, field.NotFound(p.Child("task"), fmt.Sprintf("%s (tasks: %s)", n.Task, keyList(spec.Tasks))))
	}
	for _, name := range sortedKeys(n.Inputs) {
		ip := p.Child("inputs").Key(name)
		want, declared := task.Inputs[name]
		if ok && !declared {
			errs = append(errs, field.Invalid(ip, name, fmt.Sprintf("task %s declares no input %q (declared: %s)", n.Task, name, keyList(task.Inputs))))
			continue
		}
		bdeps, berrs := checkBinding(spec, g, n.Name, n.Inputs[name].Raw, want, ip)
		errs = append(errs, berrs...)
		for _, d := range bdeps {
			deps[d] = true
		}
	}
	if ok {
		for _, name := range sortedKeys(task.Inputs) {
			if _, bound := n.Inputs[name]; !bound {
				errs = append(errs, field.Required(p.Child("inputs").Key(name), fmt.Sprintf("task %s needs input %q (%s)", n.Task, name, task.Inputs[name])))
			}
		}
	}
	for i, d := range n.DependsOn {
		switch {
		case d == n.Name:
			errs = append(errs, field.Invalid(p.Child("dependsOn").Index(i), d, "a node cannot depend on itself"))
		case g.Nodes[d] == nil:
			errs = append(errs, field.NotFound(p.Child("dependsOn").Index(i), d))
		default:
			deps[d] = true
		}
	}
	out := make([]string, 0, len(deps))
	for d := range deps {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, errs
}

// checkBinding validates one binding against the type it must produce
// (want is empty when unknown) and returns the nodes it reads.
func checkBinding(spec *v1alpha1.WorkflowSpec, g *Graph, self string, raw json.RawMessage, want v1alpha1.ValueType, p *field.Path) ([]string, field.ErrorList) {
	tpl, isString, err := template.ParseBinding(raw)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(p, string(raw), err.Error())}
	}
	if !isString || len(tpl.Refs()) == 0 {
		if want != "" {
			if err := values.Check(want, raw); err != nil {
				return nil, field.ErrorList{field.Invalid(p, string(raw), err.Error())}
			}
		}
		return nil, nil
	}
	var errs field.ErrorList
	var deps []string
	for _, r := range tpl.Refs() {
		have, err := refType(spec, g, self, r)
		if err != nil {
			errs = append(errs, field.Invalid(p, string(raw), err.Error()))
			continue
		}
		if r.Kind == template.NodeOutput {
			deps = append(deps, r.Node)
		}
		if single, ok := tpl.Single(); ok && single == r && want != "" && !assignable(have, want) {
			errs = append(errs, field.Invalid(p, string(raw), fmt.Sprintf("type mismatch: {{%s}} is %s, the input wants %s", r, have, want)))
		}
	}
	if _, single := tpl.Single(); !single && want != "" && want != v1alpha1.TypeString && len(errs) == 0 {
		errs = append(errs, field.Invalid(p, string(raw), fmt.Sprintf("text with references renders to a string, the input wants %s", want)))
	}
	return deps, errs
}

func refType(spec *v1alpha1.WorkflowSpec, g *Graph, self string, r template.Ref) (v1alpha1.ValueType, error) {
	switch r.Kind {
	case template.WorkflowInput:
		in, ok := spec.Inputs[r.Name]
		if !ok {
			return "", fmt.Errorf("{{%s}}: no workflow input %q (inputs: %s)", r, r.Name, keyList(spec.Inputs))
		}
		return in.Type, nil
	case template.NodeOutput:
		if r.Node == self {
			return "", fmt.Errorf("{{%s}}: a node cannot read its own outputs", r)
		}
		n := g.Nodes[r.Node]
		if n == nil {
			return "", fmt.Errorf("{{%s}}: no node %q (nodes: %s)", r, r.Node, strings.Join(g.Order, ", "))
		}
		t, ok := spec.Tasks[n.Task]
		if !ok {
			return "", fmt.Errorf("{{%s}}: node %q has an unknown task", r, r.Node)
		}
		typ, ok := t.Outputs[r.Name]
		if !ok {
			return "", fmt.Errorf("{{%s}}: task %s of node %s declares no output %q (outputs: %s)", r, n.Task, r.Node, r.Name, keyList(t.Outputs))
		}
		return typ, nil
	}
	return "", fmt.Errorf("{{%s}}: only workflow.inputs.NAME and nodes.NODE.outputs.KEY are allowed here", r)
}

// assignable reports whether a value of type have may bind to want: the
// same type, or an integer where a float is wanted, or a blob as a string.
func assignable(have, want v1alpha1.ValueType) bool {
	return have == want ||
		(have == v1alpha1.TypeInteger && want == v1alpha1.TypeFloat) ||
		(have == v1alpha1.TypeBlob && want == v1alpha1.TypeString) ||
		(have == v1alpha1.TypeString && want == v1alpha1.TypeBlob)
}

func validateOutputs(spec *v1alpha1.WorkflowSpec, g *Graph, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedKeys(spec.Outputs) {
		_, e := checkBinding(spec, g, "", spec.Outputs[name].Raw, "", p.Key(name))
		errs = append(errs, e...)
	}
	return errs
}

// findCycle returns one cycle as a path of node names, or nil.
func (g *Graph) findCycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range g.Deps[n] {
			switch color[d] {
			case grey:
				i := slices.Index(stack, d)
				return append(append([]string{}, stack[i:]...), d)
			case white:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	for _, n := range g.Order {
		if color[n] == white {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keyList[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(sortedKeys(m), ", ")
}
