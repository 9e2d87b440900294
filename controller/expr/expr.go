// Package expr parses and evaluates branch conditions:
//
//	{{nodes.a.outputs.y}} > 10 && ({{workflow.inputs.mode}} == "fast" || !{{workflow.inputs.safe}})
//
// Operands are references ({{...}}, see package template), numbers,
// 'single' or "double" quoted strings, true, false and null. Operators, by
// increasing precedence: ||, &&, !, and the comparisons == != < <= > >=.
// Numbers compare numerically, strings lexically; == and != work on any
// two values (JSON equality); ordering two values of different kinds is an
// error that names both. Pure: evaluation only reads through Lookup.
package expr

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rotor-dev/rotor/controller/template"
)

// Expr is a parsed condition.
type Expr struct {
	src  string
	root node
}

// Lookup resolves a reference to its JSON value.
type Lookup = template.Lookup

type node interface{}

type (
	lit struct{ v any }
	ref struct{ r template.Ref }
	not struct{ x node }
	bin struct {
		op   string
		l, r node
	}
)

// Parse parses src; errors give the position and what was expected.
func Parse(src string) (*Expr, error) {
	p := &parser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("condition %q: unexpected %q at offset %d", src, p.toks[p.pos].text, p.toks[p.pos].off)
	}
	return &Expr{src: src, root: n}, nil
}

// Refs lists the references the condition reads.
func (e *Expr) Refs() []template.Ref {
	var out []template.Ref
	var walk func(n node)
	walk = func(n node) {
		switch x := n.(type) {
		case ref:
			out = append(out, x.r)
		case not:
			walk(x.x)
		case bin:
			walk(x.l)
			walk(x.r)
		}
	}
	walk(e.root)
	return out
}

// String returns the source.
func (e *Expr) String() string { return e.src }

// Eval evaluates the condition; it must yield a boolean.
func (e *Expr) Eval(lookup Lookup) (bool, error) {
	v, err := eval(e.root, lookup)
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", e.src, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %q: yields %s, not true or false", e.src, show(v))
	}
	return b, nil
}

func eval(n node, lookup Lookup) (any, error) {
	switch x := n.(type) {
	case lit:
		return x.v, nil
	case ref:
		raw, err := lookup(x.r)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("{{%s}}: %w", x.r, err)
		}
		return v, nil
	case not:
		v, err := eval(x.x, lookup)
		if err != nil {
			return nil, err
		}
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("! needs true or false, got %s", show(v))
		}
		return !b, nil
	case bin:
		return evalBin(x, lookup)
	}
	return nil, fmt.Errorf("internal error: unknown node %T", n)
}

func evalBin(x bin, lookup Lookup) (any, error) {
	l, err := eval(x.l, lookup)
	if err != nil {
		return nil, err
	}
	if x.op == "&&" || x.op == "||" {
		lb, ok := l.(bool)
		if !ok {
			return nil, fmt.Errorf("%s needs true or false, got %s", x.op, show(l))
		}
		if (x.op == "&&" && !lb) || (x.op == "||" && lb) {
			return lb, nil // short-circuit
		}
		r, err := eval(x.r, lookup)
		if err != nil {
			return nil, err
		}
		rb, ok := r.(bool)
		if !ok {
			return nil, fmt.Errorf("%s needs true or false, got %s", x.op, show(r))
		}
		return rb, nil
	}
	r, err := eval(x.r, lookup)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case "==", "!=":
		eq := jsonEqual(l, r)
		return eq == (x.op == "=="), nil
	}
	c, err := compare(l, r)
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", show(l), x.op, show(r), err)
	}
	switch x.op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	default:
		return c >= 0, nil
	}
}

func compare(l, r any) (int, error) {
	switch a := l.(type) {
	case float64:
		if b, ok := r.(float64); ok {
			switch {
			case a < b:
				return -1, nil
			case a > b:
				return 1, nil
			}
			return 0, nil
		}
	case string:
		if b, ok := r.(string); ok {
			return strings.Compare(a, b), nil
		}
	}
	return 0, fmt.Errorf("cannot order %s and %s", kind(l), kind(r))
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

func show(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}
