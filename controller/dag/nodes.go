package dag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/expr"
	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/controller/values"
)

// DefaultMapItem is the task input a map node passes each element as.
const DefaultMapItem = "item"

// nodeOutputs returns the output types of n; nil when only known at run
// time. Types "" are unknown.
func (g *Graph) nodeOutputs(n *v1alpha1.Node, p *field.Path) (map[string]v1alpha1.ValueType, field.ErrorList) {
	switch Kind(n) {
	case "task":
		if n.Dynamic {
			return nil, nil
		}
		if t, ok := g.Tasks[n.Task]; ok {
			return t.Outputs, nil
		}
	case "map":
		if t, ok := g.Tasks[n.Map.Task]; ok {
			outs := map[string]v1alpha1.ValueType{}
			for k := range t.Outputs {
				outs[k] = v1alpha1.TypeArray
			}
			return outs, nil
		}
	case "workflow":
		return g.subOutputs(n.Workflow, p.Child("workflow"))
	case "branch":
		return g.branchOutputs(n.Branch, p.Child("branch"))
	case "gate":
		return map[string]v1alpha1.ValueType{}, nil
	}
	return map[string]v1alpha1.ValueType{}, nil
}

func (g *Graph) subOutputs(w *v1alpha1.SubWorkflow, p *field.Path) (map[string]v1alpha1.ValueType, field.ErrorList) {
	if w.Spec == nil {
		return nil, nil // a template: known when it runs
	}
	spec, err := DecodeSpec(w.Spec.Raw)
	if err != nil {
		return nil, nil // reported by validateNode
	}
	outs := map[string]v1alpha1.ValueType{}
	for k := range spec.Outputs {
		outs[k] = ""
	}
	return outs, nil
}

func (g *Graph) targetOutputs(t *v1alpha1.BranchTarget, p *field.Path) (map[string]v1alpha1.ValueType, field.ErrorList) {
	if t.Workflow != nil {
		return g.subOutputs(t.Workflow, p.Child("workflow"))
	}
	if task, ok := g.Tasks[t.Task]; ok {
		return task.Outputs, nil
	}
	return map[string]v1alpha1.ValueType{}, nil
}

// branchOutputs are the outputs every target has, with their type when all
// agree.
func (g *Graph) branchOutputs(b *v1alpha1.BranchNode, p *field.Path) (map[string]v1alpha1.ValueType, field.ErrorList) {
	var targets []*v1alpha1.BranchTarget
	for i := range b.Cases {
		targets = append(targets, &b.Cases[i].BranchTarget)
	}
	if b.Else != nil {
		targets = append(targets, b.Else)
	}
	var common map[string]v1alpha1.ValueType
	for i, t := range targets {
		outs, errs := g.targetOutputs(t, p.Child("cases").Index(i))
		if len(errs) > 0 || outs == nil {
			return nil, errs
		}
		if common == nil {
			common = map[string]v1alpha1.ValueType{}
			for k, v := range outs {
				common[k] = v
			}
			continue
		}
		for k, v := range common {
			w, ok := outs[k]
			switch {
			case !ok:
				delete(common, k)
			case w != v:
				common[k] = ""
			}
		}
	}
	return common, nil
}

func (g *Graph) validateNode(n *v1alpha1.Node, p *field.Path) ([]string, field.ErrorList) {
	ks := kinds(n)
	if len(ks) != 1 {
		return nil, field.ErrorList{field.Invalid(p, n.Name, fmt.Sprintf("a node needs exactly one of task, branch, map, workflow or gate (has %v)", ks))}
	}
	if n.Dynamic && ks[0] != "task" {
		return nil, field.ErrorList{field.Invalid(p.Child("dynamic"), true, "only a task node can be dynamic")}
	}
	deps := map[string]bool{}
	var errs field.ErrorList
	add := func(d []string, e field.ErrorList) {
		for _, x := range d {
			deps[x] = true
		}
		errs = append(errs, e...)
	}
	switch ks[0] {
	case "task":
		add(g.validateTaskRef(n.Name, n.Task, n.Inputs, "", p))
		if n.Dynamic {
			if t, ok := g.Tasks[n.Task]; ok && t.Outputs["fragment"] != v1alpha1.TypeObject {
				errs = append(errs, field.Invalid(p.Child("task"), n.Task, `a dynamic node's task must declare the output "fragment" of type object`))
			}
		}
	case "workflow":
		add(g.validateSub(n.Name, n.Workflow, n.Inputs, p.Child("workflow"), p.Child("inputs")))
	case "branch":
		add(g.validateBranch(n, p))
	case "map":
		add(g.validateMap(n, p.Child("map")))
	case "gate":
		errs = append(errs, validateGate(n, p)...)
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

// validateTaskRef checks a task reference and its bindings; skip names a
// task input bound elsewhere (a map's item).
func (g *Graph) validateTaskRef(self, task string, bindings map[string]apiextJSON, skip string, p *field.Path) ([]string, field.ErrorList) {
	t, ok := g.Tasks[task]
	if !ok {
		return nil, field.ErrorList{field.NotFound(p.Child("task"), fmt.Sprintf("%s (tasks: %s)", task, keyList(g.Tasks)))}
	}
	declared := map[string]v1alpha1.ValueType{}
	for k, v := range t.Inputs {
		if k != skip {
			declared[k] = v
		}
	}
	required := map[string]bool{}
	for k := range declared {
		required[k] = true
	}
	return g.checkInputs(self, bindings, declared, required, "task "+task, p.Child("inputs"))
}

// checkInputs validates bindings against declared inputs: every binding
// names a declared input with a matching type, every required input is
// bound.
func (g *Graph) checkInputs(self string, bindings map[string]apiextJSON, declared map[string]v1alpha1.ValueType, required map[string]bool, what string, p *field.Path) ([]string, field.ErrorList) {
	var deps []string
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(bindings)) {
		want, ok := declared[name]
		if !ok {
			errs = append(errs, field.Invalid(p.Key(name), name, fmt.Sprintf("%s declares no input %q (declared: %s)", what, name, keyList(declared))))
			continue
		}
		d, e := g.checkBinding(self, bindings[name].Raw, want, false, p.Key(name))
		deps, errs = append(deps, d...), append(errs, e...)
	}
	for _, name := range slices.Sorted(maps.Keys(required)) {
		if _, bound := bindings[name]; !bound {
			errs = append(errs, field.Required(p.Key(name), fmt.Sprintf("%s needs input %q (%s)", what, name, declared[name])))
		}
	}
	return deps, errs
}

func (g *Graph) validateSub(self string, w *v1alpha1.SubWorkflow, bindings map[string]apiextJSON, p, inputsPath *field.Path) ([]string, field.ErrorList) {
	switch {
	case (w.TemplateRef == "") == (w.Spec == nil):
		return nil, field.ErrorList{field.Invalid(p, "", "give exactly one of templateRef and spec")}
	case w.TemplateRef != "":
		// The template is checked when the node starts; its inputs'
		// bindings can still be checked for references now.
		var deps []string
		var errs field.ErrorList
		for _, name := range slices.Sorted(maps.Keys(bindings)) {
			d, e := g.checkBinding(self, bindings[name].Raw, "", false, inputsPath.Key(name))
			deps, errs = append(deps, d...), append(errs, e...)
		}
		return deps, errs
	}
	spec, err := DecodeSpec(w.Spec.Raw)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(p.Child("spec"), "", err.Error())}
	}
	_, errs := build(spec, g.Tasks, g.selector, p.Child("spec"), true)
	declared := map[string]v1alpha1.ValueType{}
	required := map[string]bool{}
	for k, in := range spec.Inputs {
		declared[k] = in.Type
		required[k] = in.Value == nil
	}
	for k, v := range required {
		if !v {
			delete(required, k)
		}
	}
	deps, ierrs := g.checkInputs(self, bindings, declared, required, "the sub-workflow", inputsPath)
	return deps, append(errs, ierrs...)
}

func (g *Graph) validateBranch(n *v1alpha1.Node, p *field.Path) ([]string, field.ErrorList) {
	var deps []string
	var errs field.ErrorList
	if len(n.Inputs) > 0 {
		errs = append(errs, field.Invalid(p.Child("inputs"), "", "a branch takes no inputs: bind them in each case"))
	}
	bp := p.Child("branch")
	if len(n.Branch.Cases) == 0 {
		errs = append(errs, field.Required(bp.Child("cases"), "a branch needs at least one case"))
	}
	for i := range n.Branch.Cases {
		c := &n.Branch.Cases[i]
		cp := bp.Child("cases").Index(i)
		e, err := expr.Parse(c.If)
		if err != nil {
			errs = append(errs, field.Invalid(cp.Child("if"), c.If, err.Error()))
		} else {
			g.Conditions[n.Name] = append(g.Conditions[n.Name], e)
			for _, r := range e.Refs() {
				if _, err := g.refType(n.Name, r, false); err != nil {
					errs = append(errs, field.Invalid(cp.Child("if"), c.If, err.Error()))
				} else if r.Kind == template.NodeOutput {
					deps = append(deps, r.Node)
				}
			}
		}
		d, te := g.validateTarget(n.Name, &c.BranchTarget, cp)
		deps, errs = append(deps, d...), append(errs, te...)
	}
	if n.Branch.Else != nil {
		d, te := g.validateTarget(n.Name, n.Branch.Else, bp.Child("else"))
		deps, errs = append(deps, d...), append(errs, te...)
	}
	return deps, errs
}

func (g *Graph) validateTarget(self string, t *v1alpha1.BranchTarget, p *field.Path) ([]string, field.ErrorList) {
	switch {
	case (t.Task == "") == (t.Workflow == nil):
		return nil, field.ErrorList{field.Invalid(p, "", "a case runs exactly one of task and workflow")}
	case t.Workflow != nil:
		return g.validateSub(self, t.Workflow, t.Inputs, p.Child("workflow"), p.Child("inputs"))
	}
	return g.validateTaskRef(self, t.Task, t.Inputs, "", p)
}

func (g *Graph) validateMap(n *v1alpha1.Node, p *field.Path) ([]string, field.ErrorList) {
	m := n.Map
	var errs field.ErrorList
	if len(n.Inputs) > 0 {
		errs = append(errs, field.Invalid(field.NewPath("inputs"), "", "a map node binds inputs in map.inputs"))
	}
	item := m.Item
	if item == "" {
		item = DefaultMapItem
	}
	// A map runs over an array, or over a directory's files (one file
	// per item).
	over := v1alpha1.TypeArray
	if tpl, isString, err := template.ParseBinding(m.Over.Raw); err == nil && isString {
		if r, single := tpl.Single(); single {
			if have, err := g.refType(n.Name, r, false); err == nil && have == v1alpha1.TypeDirectory {
				over = v1alpha1.TypeDirectory
			}
		}
	}
	deps, e := g.checkBinding(n.Name, m.Over.Raw, over, false, p.Child("over"))
	errs = append(errs, e...)
	t, ok := g.Tasks[m.Task]
	if ok {
		if typ, has := t.Inputs[item]; !has {
			errs = append(errs, field.Invalid(p.Child("item"), item, fmt.Sprintf("task %s declares no input %q to receive each element (declared: %s)", m.Task, item, keyList(t.Inputs))))
		} else if over == v1alpha1.TypeDirectory && typ != v1alpha1.TypeFile {
			errs = append(errs, field.Invalid(p.Child("item"), item, fmt.Sprintf("a map over a directory gives each item one of its files: task %s's input %q must be of type file, not %s", m.Task, item, typ)))
		}
	}
	d, e := g.validateTaskRef(n.Name, m.Task, m.Inputs, item, p)
	return append(deps, d...), append(errs, e...)
}

func validateGate(n *v1alpha1.Node, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(n.Inputs) > 0 {
		errs = append(errs, field.Invalid(p.Child("inputs"), "", "a gate takes no inputs"))
	}
	if (n.Gate.Sleep == nil) == (n.Gate.Approve == nil) {
		errs = append(errs, field.Invalid(p.Child("gate"), "", "a gate needs exactly one of sleep and approve"))
	}
	return errs
}

func (g *Graph) validateOnFailure(n *v1alpha1.Node, p *field.Path) field.ErrorList {
	if Kind(n) != "task" || n.Task == "" || n.Dynamic {
		return field.ErrorList{field.Invalid(p, n.Name, "onFailure must be a plain task node")}
	}
	if len(n.DependsOn) > 0 {
		return field.ErrorList{field.Invalid(p.Child("dependsOn"), n.DependsOn, "onFailure runs after the failure; it has no dependencies")}
	}
	if g.Nodes[n.Name] != nil {
		return field.ErrorList{field.Invalid(p.Child("name"), n.Name, fmt.Sprintf("onFailure node %q has the name of a node in spec.nodes: rename it", n.Name))}
	}
	t, ok := g.Tasks[n.Task]
	if !ok {
		return field.ErrorList{field.NotFound(p.Child("task"), n.Task)}
	}
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(n.Inputs)) {
		want, ok := t.Inputs[name]
		if !ok {
			errs = append(errs, field.Invalid(p.Child("inputs").Key(name), name, fmt.Sprintf("task %s declares no input %q", n.Task, name)))
			continue
		}
		_, e := g.checkBinding("", n.Inputs[name].Raw, want, true, p.Child("inputs").Key(name))
		errs = append(errs, e...)
	}
	for _, name := range slices.Sorted(maps.Keys(t.Inputs)) {
		if _, ok := n.Inputs[name]; !ok {
			errs = append(errs, field.Required(p.Child("inputs").Key(name), fmt.Sprintf("task %s needs input %q", n.Task, name)))
		}
	}
	return errs
}

type apiextJSON = apiextensionsv1.JSON

// checkBinding validates one binding against the type it must produce
// (want "" when unknown) and returns the nodes it reads.
func (g *Graph) checkBinding(self string, raw json.RawMessage, want v1alpha1.ValueType, failureRefs bool, p *field.Path) ([]string, field.ErrorList) {
	tpl, isString, err := template.ParseBinding(raw)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(p, string(raw), err.Error())}
	}
	if !isString {
		if refs, rerr := template.BindingRefs(raw); rerr == nil && len(refs) > 0 {
			return g.checkComposite(self, raw, refs, want, failureRefs, p)
		} else if rerr != nil {
			return nil, field.ErrorList{field.Invalid(p, string(raw), rerr.Error())}
		}
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
	single, isSingle := tpl.Single()
	for _, r := range tpl.Refs() {
		have, err := g.refType(self, r, failureRefs)
		if err != nil {
			errs = append(errs, field.Invalid(p, string(raw), err.Error()))
			continue
		}
		if r.Kind == template.NodeOutput {
			deps = append(deps, r.Node)
		}
		if isSingle && single == r && want != "" && have != "" && !assignable(have, want) {
			errs = append(errs, field.Invalid(p, string(raw), fmt.Sprintf("type mismatch: {{%s}} is %s, the input wants %s", r, have, want)))
		}
	}
	if !isSingle && want != "" && want != v1alpha1.TypeString && len(errs) == 0 {
		errs = append(errs, field.Invalid(p, string(raw), fmt.Sprintf("text with references renders to a string, the input wants %s", want)))
	}
	return deps, errs
}

// checkComposite checks an array or object binding holding references:
// each reference must resolve, and the shape must be what want asks for.
func (g *Graph) checkComposite(self string, raw json.RawMessage, refs []template.Ref, want v1alpha1.ValueType, failureRefs bool, p *field.Path) ([]string, field.ErrorList) {
	var errs field.ErrorList
	var deps []string
	for _, r := range refs {
		if _, err := g.refType(self, r, failureRefs); err != nil {
			errs = append(errs, field.Invalid(p, string(raw), err.Error()))
		} else if r.Kind == template.NodeOutput {
			deps = append(deps, r.Node)
		}
	}
	shape := v1alpha1.TypeObject
	if c := bytes.TrimSpace(raw); len(c) > 0 && c[0] == '[' {
		shape = v1alpha1.TypeArray
	}
	if want != "" && want != shape {
		errs = append(errs, field.Invalid(p, string(raw), fmt.Sprintf("this binding builds %s %s, the input wants %s", article(shape), shape, want)))
	}
	return deps, errs
}

func article(t v1alpha1.ValueType) string {
	if t == v1alpha1.TypeArray || t == v1alpha1.TypeObject || t == v1alpha1.TypeInteger {
		return "an"
	}
	return "a"
}

func (g *Graph) refType(self string, r template.Ref, failureRefs bool) (v1alpha1.ValueType, error) {
	switch r.Kind {
	case template.WorkflowInput:
		in, ok := g.Spec.Inputs[r.Name]
		if !ok {
			return "", fmt.Errorf("{{%s}}: no workflow input %q (inputs: %s)", r, r.Name, keyList(g.Spec.Inputs))
		}
		return in.Type, nil
	case template.Failure:
		if !failureRefs {
			return "", fmt.Errorf("{{%s}}: only onFailure may read the failure", r)
		}
		return v1alpha1.TypeString, nil
	case template.NodeOutput:
		if failureRefs {
			return "", fmt.Errorf("{{%s}}: onFailure may read workflow inputs and the failure, not node outputs", r)
		}
		if r.Node == self {
			return "", fmt.Errorf("{{%s}}: a node cannot read its own outputs", r)
		}
		n := g.Nodes[r.Node]
		if n == nil {
			return "", fmt.Errorf("{{%s}}: no node %q (nodes: %s)", r, r.Node, joinOrder(g.Order))
		}
		outs := g.outputs[r.Node]
		if outs == nil {
			return "", nil // known at run time
		}
		typ, ok := outs[r.Name]
		if !ok {
			return "", fmt.Errorf("{{%s}}: node %s (%s) has no output %q (outputs: %s)", r, r.Node, describeNode(n), r.Name, keyList(outs))
		}
		return typ, nil
	}
	return "", fmt.Errorf("{{%s}}: only workflow.inputs.NAME and nodes.NODE.outputs.KEY are allowed here", r)
}

func describeNode(n *v1alpha1.Node) string {
	if k := Kind(n); k != "task" {
		return k
	}
	return "task " + n.Task
}

// assignable reports whether a value of type have may bind to want: the
// same type, or an integer where a float is wanted, or a blob as a string.
func assignable(have, want v1alpha1.ValueType) bool {
	return have == want ||
		(have == v1alpha1.TypeInteger && want == v1alpha1.TypeFloat) ||
		(have == v1alpha1.TypeBlob && want == v1alpha1.TypeString) ||
		(have == v1alpha1.TypeString && want == v1alpha1.TypeBlob)
}

func (g *Graph) validateOutputs(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(g.Spec.Outputs)) {
		_, e := g.checkBinding("", g.Spec.Outputs[name].Raw, "", false, p.Key(name))
		errs = append(errs, e...)
	}
	return errs
}

func validateInputs(spec *v1alpha1.WorkflowSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(spec.Inputs)) {
		in := spec.Inputs[name]
		if in.Value == nil {
			continue // required: whoever runs this DAG must bind it
		}
		if err := values.Check(in.Type, in.Value.Raw); err != nil {
			errs = append(errs, field.Invalid(p.Key(name).Child("value"), string(in.Value.Raw), err.Error()))
		}
	}
	return errs
}

func validateTasks(spec *v1alpha1.WorkflowSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range slices.Sorted(maps.Keys(spec.Tasks)) {
		t := spec.Tasks[name]
		tp := p.Key(name)
		if TaskType(&t) == "pod" && t.Container == nil {
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

func joinOrder(order []string) string {
	if len(order) == 0 {
		return "none"
	}
	out := ""
	for i, s := range order {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
