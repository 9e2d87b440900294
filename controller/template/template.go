// Package template parses and renders Rotor's {{ ... }} references:
//
//	{{workflow.inputs.NAME}}       a workflow input
//	{{nodes.NODE.outputs.KEY}}     an upstream node's output
//	{{inputs.NAME}}                the task's own input (container args)
//
// A binding that is exactly one reference keeps the referenced value's
// type; a string that mixes text and references renders to a string.
//
// Only "{{" opens a reference; a "}}" outside one is plain text, because
// shell and JSON in task commands produce it all the time (${#w}}).
package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rotor-dev/rotor/controller/values"
)

// Kind is what a reference points at.
type Kind int

// Reference kinds.
const (
	WorkflowInput Kind = iota + 1
	NodeOutput
	TaskInput
	// Failure is {{failure.node}} or {{failure.message}}, for onFailure.
	Failure
)

// Ref is one parsed reference.
type Ref struct {
	Kind Kind
	Node string // NodeOutput only
	Name string
}

func (r Ref) String() string {
	switch r.Kind {
	case WorkflowInput:
		return "workflow.inputs." + r.Name
	case NodeOutput:
		return "nodes." + r.Node + ".outputs." + r.Name
	case Failure:
		return "failure." + r.Name
	default:
		return "inputs." + r.Name
	}
}

type part struct {
	text string
	ref  *Ref
}

// Template is a parsed string.
type Template struct{ parts []part }

// Parse parses s. Errors say what is wrong and what is allowed.
func Parse(s string) (*Template, error) {
	t := &Template{}
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if s != "" {
				t.parts = append(t.parts, part{text: s})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{text: s[:i]})
		}
		end := strings.Index(s[i+2:], "}}")
		if end < 0 {
			return nil, fmt.Errorf("unterminated {{ in %q", s)
		}
		ref, err := parseRef(strings.TrimSpace(s[i+2 : i+2+end]))
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, part{ref: &ref})
		s = s[i+2+end+2:]
	}
}

func parseRef(expr string) (Ref, error) {
	f := strings.Split(expr, ".")
	valid := func(ss ...string) bool {
		for _, s := range ss {
			if s == "" || strings.ContainsAny(s, " \t\n{}") {
				return false
			}
		}
		return true
	}
	switch {
	case len(f) == 3 && f[0] == "workflow" && f[1] == "inputs" && valid(f[2]):
		return Ref{Kind: WorkflowInput, Name: f[2]}, nil
	case len(f) == 4 && f[0] == "nodes" && f[2] == "outputs" && valid(f[1], f[3]):
		return Ref{Kind: NodeOutput, Node: f[1], Name: f[3]}, nil
	case len(f) == 2 && f[0] == "inputs" && valid(f[1]):
		return Ref{Kind: TaskInput, Name: f[1]}, nil
	case len(f) == 2 && f[0] == "failure" && (f[1] == "node" || f[1] == "message"):
		return Ref{Kind: Failure, Name: f[1]}, nil
	}
	return Ref{}, fmt.Errorf("bad reference {{%s}}: use workflow.inputs.NAME, nodes.NODE.outputs.KEY, inputs.NAME or failure.node/failure.message", expr)
}

// Refs lists the template's references in order.
func (t *Template) Refs() []Ref {
	var out []Ref
	for _, p := range t.parts {
		if p.ref != nil {
			out = append(out, *p.ref)
		}
	}
	return out
}

// Single returns the reference when the template is exactly one.
func (t *Template) Single() (Ref, bool) {
	if len(t.parts) == 1 && t.parts[0].ref != nil {
		return *t.parts[0].ref, true
	}
	return Ref{}, false
}

// Lookup finds a referenced value as JSON.
type Lookup func(Ref) (json.RawMessage, error)

// RenderString renders the template to text.
func (t *Template) RenderString(lookup Lookup) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.ref == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := lookup(*p.ref)
		if err != nil {
			return "", err
		}
		b.WriteString(values.Text(v))
	}
	return b.String(), nil
}

// Resolve evaluates a binding, a JSON value. A string holding exactly one
// reference yields the referenced value unchanged; a string with text and
// references yields a JSON string; arrays and objects are resolved element
// by element (so ["{{nodes.a.outputs.y}}", "{{nodes.b.outputs.y}}"]
// gathers two outputs); any other value is a literal.
func Resolve(binding json.RawMessage, lookup Lookup) (json.RawMessage, error) {
	t, isString, err := ParseBinding(binding)
	if err != nil {
		return nil, err
	}
	if !isString {
		if c := bytes.TrimSpace(binding); len(c) > 0 && (c[0] == '[' || c[0] == '{') {
			return resolveComposite(binding, lookup)
		}
		return binding, nil
	}
	if r, ok := t.Single(); ok {
		return lookup(r)
	}
	if len(t.Refs()) == 0 {
		return binding, nil
	}
	s, err := t.RenderString(lookup)
	if err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

func resolveComposite(binding json.RawMessage, lookup Lookup) (json.RawMessage, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(binding, &arr); err == nil {
		for i, e := range arr {
			v, err := Resolve(e, lookup)
			if err != nil {
				return nil, err
			}
			arr[i] = v
		}
		return json.Marshal(arr)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(binding, &obj); err != nil {
		return nil, fmt.Errorf("binding is not valid JSON: %w", err)
	}
	for k, e := range obj {
		v, err := Resolve(e, lookup)
		if err != nil {
			return nil, err
		}
		obj[k] = v
	}
	return json.Marshal(obj)
}

// BindingRefs lists every reference in a binding, inside arrays and
// objects too.
func BindingRefs(binding json.RawMessage) ([]Ref, error) {
	t, isString, err := ParseBinding(binding)
	if err != nil {
		return nil, err
	}
	if isString {
		return t.Refs(), nil
	}
	var arr []json.RawMessage
	var obj map[string]json.RawMessage
	var elems []json.RawMessage
	if json.Unmarshal(binding, &arr) == nil {
		elems = arr
	} else if json.Unmarshal(binding, &obj) == nil {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			elems = append(elems, obj[k])
		}
	}
	var out []Ref
	for _, e := range elems {
		refs, err := BindingRefs(e)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}

// ParseBinding parses a binding if it is a JSON string; isString is false
// for literals of other types.
func ParseBinding(binding json.RawMessage) (t *Template, isString bool, err error) {
	var s string
	if err := json.Unmarshal(binding, &s); err != nil {
		return nil, false, nil
	}
	t, err = Parse(s)
	return t, true, err
}
