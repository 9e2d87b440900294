package expr

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/controller/template"
)

var values = map[string]string{
	"nodes.a.outputs.y":      `12`,
	"workflow.inputs.mode":   `"fast"`,
	"workflow.inputs.safe":   `false`,
	"nodes.a.outputs.list":   `[1, 2]`,
	"nodes.a.outputs.nothin": `null`,
}

func lookup(r template.Ref) (json.RawMessage, error) {
	v, ok := values[r.String()]
	if !ok {
		return nil, fmt.Errorf("no value for {{%s}}", r)
	}
	return json.RawMessage(v), nil
}

func TestEval(t *testing.T) {
	for _, tc := range []struct {
		src     string
		want    bool
		wantErr string
	}{
		{`{{nodes.a.outputs.y}} > 10`, true, ""},
		{`{{nodes.a.outputs.y}} >= 12 && {{nodes.a.outputs.y}} < 12.5`, true, ""},
		{`{{nodes.a.outputs.y}} == 12.0`, true, ""},
		{`{{workflow.inputs.mode}} == "fast" || {{workflow.inputs.safe}}`, true, ""},
		{`{{workflow.inputs.mode}} == 'slow'`, false, ""},
		{`!{{workflow.inputs.safe}}`, true, ""},
		{`!({{nodes.a.outputs.y}} > 10 && {{workflow.inputs.safe}})`, true, ""},
		{`{{nodes.a.outputs.list}} == {{nodes.a.outputs.list}}`, true, ""},
		{`{{nodes.a.outputs.nothin}} == null`, true, ""},
		{`-1 < {{nodes.a.outputs.y}}`, true, ""},
		{`1e3 > {{nodes.a.outputs.y}}`, true, ""},
		{`false && {{nodes.b.outputs.z}}`, false, ""}, // short-circuit: b is never read
		{`{{nodes.a.outputs.y}} > "ten"`, false, `12 > "ten": cannot order a number and a string`},
		{`{{nodes.a.outputs.y}}`, false, "yields 12, not true or false"},
		{`{{nodes.a.outputs.y}} = 12`, false, `did you mean ==?`},
		{`{{nodes.a.outputs.y}} > `, false, "ends where a value was expected"},
		{`(true`, false, "missing )"},
		{`fast == "fast"`, false, `unknown word "fast"`},
		{`{{nodes.b.outputs.z}} == 1`, false, "no value for {{nodes.b.outputs.z}}"},
		{`"open`, false, "unterminated string"},
		{`true true`, false, `unexpected "true"`},
	} {
		t.Run(tc.src, func(t *testing.T) {
			e, err := Parse(tc.src)
			var got bool
			if err == nil {
				got, err = e.Eval(lookup)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	e, err := Parse(`{{nodes.a.outputs.y}} > 1 && !{{workflow.inputs.safe}}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(e.Refs()); got != "[nodes.a.outputs.y workflow.inputs.safe]" {
		t.Fatalf("Refs = %s", got)
	}
}

// FuzzExpr: parsing and evaluating arbitrary text never panics, and a
// parsed condition evaluates deterministically.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{`{{nodes.a.outputs.y}} > 10`, `!(true || false) && 'x' == "x"`, `((`, `-1e-3 <= .5`, `{{`, `"\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		a, errA := e.Eval(lookup)
		b, errB := e.Eval(lookup)
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("non-deterministic evaluation of %q", s)
		}
	})
}
