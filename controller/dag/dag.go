// Package dag validates a WorkflowSpec and derives its dependency graph.
// It is pure: no clients, no clocks. Every error names the field path of
// the problem (spec.nodes[1].inputs[x]) so users can find it.
package dag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/expr"
)

// Graph is a validated DAG (a workflow, or a nested one). Node order is
// the spec's order.
type Graph struct {
	Spec  *v1alpha1.WorkflowSpec
	Order []string
	// Deps maps a node to the nodes it waits for, sorted.
	Deps map[string][]string
	// Children maps a node to the nodes that wait for it, sorted.
	Children map[string][]string
	Nodes    map[string]*v1alpha1.Node
	// Tasks are the task templates visible here: the DAG's own over the
	// enclosing ones.
	Tasks map[string]v1alpha1.TaskTemplate
	// Conditions holds each branch node's parsed case conditions.
	Conditions map[string][]*expr.Expr
	// outputs holds each node's output types; a nil map means unknown
	// until run time (template sub-workflows, dynamic nodes).
	outputs map[string]map[string]v1alpha1.ValueType
	// selector is the clusterSelector this DAG's tasks are placed with:
	// its own and the enclosing ones known at validation.
	selector map[string]string
}

// Build validates a top-level workflow spec.
func Build(spec *v1alpha1.WorkflowSpec) (*Graph, field.ErrorList) {
	root := field.NewPath("spec")
	if spec.WorkflowTemplateRef != "" {
		if len(spec.Nodes) > 0 || len(spec.Tasks) > 0 {
			return nil, field.ErrorList{field.Invalid(root.Child("workflowTemplateRef"), spec.WorkflowTemplateRef,
				"a workflow that runs a template gives only inputs: remove tasks and nodes")}
		}
		return nil, templateRefOnly(spec, root) // the rest is validated once the template is known
	}
	var missing field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(spec.Inputs)) {
		if spec.Inputs[k].Value == nil {
			missing = append(missing, field.Required(root.Child("inputs").Key(k).Child("value"), "a workflow input needs a value"))
		}
	}
	g, errs := BuildScope(spec, nil, root)
	if len(missing) > 0 {
		return nil, append(missing, errs...)
	}
	return g, errs
}

// BuildScope validates spec as a DAG whose tasks may also come from
// enclosing (a sub-workflow's parent), reporting errors under path. It
// accepts every field of a Workflow's own spec; nested specs and
// templates go through BuildNested.
func BuildScope(spec *v1alpha1.WorkflowSpec, enclosing map[string]v1alpha1.TaskTemplate, path *field.Path) (*Graph, field.ErrorList) {
	return build(spec, enclosing, nil, path, false)
}

// build validates spec under path; outer is the clusterSelector of the
// enclosing DAGs, nested says spec runs inside another one.
func build(spec *v1alpha1.WorkflowSpec, enclosing map[string]v1alpha1.TaskTemplate, outer map[string]string, path *field.Path, nested bool) (*Graph, field.ErrorList) {
	g := &Graph{
		Spec: spec, Deps: map[string][]string{}, Children: map[string][]string{}, Nodes: map[string]*v1alpha1.Node{},
		Tasks: map[string]v1alpha1.TaskTemplate{}, Conditions: map[string][]*expr.Expr{},
		outputs: map[string]map[string]v1alpha1.ValueType{},
	}
	for k, t := range enclosing {
		g.Tasks[k] = t
	}
	for k, t := range spec.Tasks {
		g.Tasks[k] = t
	}
	errs := validateInputs(spec, path.Child("inputs"))
	if nested {
		errs = append(errs, nestedOnly(spec, path)...)
	}
	sel, serrs := nestedSelector(outer, spec, path)
	g.selector, errs = sel, append(errs, serrs...)
	errs = append(errs, validateTasks(spec, path.Child("tasks"))...)
	if len(spec.Nodes) == 0 {
		errs = append(errs, field.Required(path.Child("nodes"), "a workflow needs at least one node"))
	}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		p := path.Child("nodes").Index(i)
		if n.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "every node needs a name"))
			continue
		}
		if _, dup := g.Nodes[n.Name]; dup {
			errs = append(errs, field.Duplicate(p.Child("name"), n.Name))
			continue
		}
		g.Nodes[n.Name] = n
		g.Order = append(g.Order, n.Name)
	}
	// Output types first: bindings anywhere may read any node.
	for i := range spec.Nodes {
		if n := &spec.Nodes[i]; g.Nodes[n.Name] == n {
			outs, oerrs := g.nodeOutputs(n, path.Child("nodes").Index(i))
			g.outputs[n.Name] = outs
			errs = append(errs, oerrs...)
		}
	}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		if g.Nodes[n.Name] != n {
			continue
		}
		deps, nerrs := g.validateNode(n, path.Child("nodes").Index(i))
		errs = append(errs, nerrs...)
		g.Deps[n.Name] = deps
		for _, d := range deps {
			g.Children[d] = append(g.Children[d], n.Name)
		}
	}
	for k := range g.Children {
		sort.Strings(g.Children[k])
	}
	errs = append(errs, g.validateOutputs(path.Child("outputs"))...)
	if spec.OnFailure != nil {
		errs = append(errs, g.validateOnFailure(spec.OnFailure, path.Child("onFailure"))...)
	}
	if len(errs) == 0 {
		if cycle := g.findCycle(); cycle != nil {
			errs = append(errs, field.Invalid(path.Child("nodes"), strings.Join(cycle, " -> "), "the nodes form a cycle"))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return g, nil
}

// DecodeSpec strictly decodes an inline or snapshotted WorkflowSpec.
func DecodeSpec(raw []byte) (*v1alpha1.WorkflowSpec, error) {
	spec := &v1alpha1.WorkflowSpec{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(spec); err != nil {
		return nil, fmt.Errorf("not a workflow spec: %w", err)
	}
	return spec, nil
}

// Message words a spec's errors the one way `rotor validate` and the
// admission webhook both print them: "invalid KIND:" and one error a line.
func Message(kind string, errs field.ErrorList) string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s:", kind)
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s", e.Error())
	}
	return b.String()
}

// TaskType is the plugin a task runs with: its type, or "pod" by default.
func TaskType(t *v1alpha1.TaskTemplate) string {
	if t.Type != "" {
		return t.Type
	}
	return "pod"
}

// Kind names what a node does: task, branch, map, workflow or gate.
func Kind(n *v1alpha1.Node) string {
	switch {
	case n.Branch != nil:
		return "branch"
	case n.Map != nil:
		return "map"
	case n.Workflow != nil:
		return "workflow"
	case n.Gate != nil:
		return "gate"
	}
	return "task"
}

func kinds(n *v1alpha1.Node) []string {
	var k []string
	if n.Task != "" {
		k = append(k, "task")
	}
	if n.Branch != nil {
		k = append(k, "branch")
	}
	if n.Map != nil {
		k = append(k, "map")
	}
	if n.Workflow != nil {
		k = append(k, "workflow")
	}
	if n.Gate != nil {
		k = append(k, "gate")
	}
	return k
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

func keyList[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
