package template

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func lookupFrom(m map[string]string) Lookup {
	return func(r Ref) (json.RawMessage, error) {
		v, ok := m[r.String()]
		if !ok {
			return nil, fmt.Errorf("no value for %s", r)
		}
		return json.RawMessage(v), nil
	}
}

func TestResolve(t *testing.T) {
	scope := lookupFrom(map[string]string{
		"workflow.inputs.n":   `3`,
		"nodes.a.outputs.y":   `9`,
		"nodes.a.outputs.obj": `{"k": [1, 2]}`,
		"workflow.inputs.s":   `"hi"`,
	})
	for _, tc := range []struct{ name, binding, want, wantErr string }{
		{"single keeps type", `"{{workflow.inputs.n}}"`, `3`, ""},
		{"spaces allowed", `"{{ nodes.a.outputs.y }}"`, `9`, ""},
		{"object kept", `"{{nodes.a.outputs.obj}}"`, `{"k": [1, 2]}`, ""},
		{"interpolation gives string", `"n={{workflow.inputs.n}} s={{workflow.inputs.s}}"`, `"n=3 s=hi"`, ""},
		{"literal number", `5`, `5`, ""},
		{"literal string", `"plain"`, `"plain"`, ""},
		{"missing value", `"{{nodes.b.outputs.y}}"`, "", "no value for nodes.b.outputs.y"},
		{"bad ref", `"{{nodes.a.y}}"`, "", "bad reference {{nodes.a.y}}"},
		{"unterminated", `"{{workflow.inputs.n"`, "", "unterminated {{"},
		{"stray close is text", `"a }} b {{workflow.inputs.n}}"`, `"a }} b 3"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(json.RawMessage(tc.binding), scope)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Resolve(%s) err = %v, want %q", tc.binding, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Resolve(%s) = %s, %v; want %s", tc.binding, got, err, tc.want)
			}
		})
	}
}

func TestRefs(t *testing.T) {
	tpl, err := Parse(`echo {{inputs.x}} {{ nodes.a.outputs.y }} {{workflow.inputs.n}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{{Kind: TaskInput, Name: "x"}, {Kind: NodeOutput, Node: "a", Name: "y"}, {Kind: WorkflowInput, Name: "n"}}
	got := tpl.Refs()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Refs = %v, want %v", got, want)
	}
}

// FuzzParse checks that parsing never panics and that whatever parses
// renders back without error when every reference has a value.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "a", "{{inputs.x}}", "x{{ nodes.a.outputs.y }}y", "{{", "}}", "{{}}", "{{a.b.c.d.e}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := Parse(s)
		if err != nil {
			return
		}
		out, err := tpl.RenderString(func(Ref) (json.RawMessage, error) { return json.RawMessage(`1`), nil })
		if err != nil {
			t.Fatalf("render of parsed %q failed: %v", s, err)
		}
		if len(tpl.Refs()) == 0 && out != s {
			t.Fatalf("text without references changed: %q -> %q", s, out)
		}
	})
}

func TestResolveComposite(t *testing.T) {
	scope := lookupFrom(map[string]string{"nodes.a.outputs.y": `9`, "nodes.b.outputs.s": `"x"`})
	got, err := Resolve(json.RawMessage(`["{{nodes.a.outputs.y}}", 2, {"k": "v={{nodes.b.outputs.s}}"}]`), scope)
	if err != nil || string(got) != `[9,2,{"k":"v=x"}]` {
		t.Fatalf("Resolve = %s, %v", got, err)
	}
	refs, err := BindingRefs(json.RawMessage(`{"a": ["{{nodes.a.outputs.y}}"], "b": "{{nodes.b.outputs.s}}"}`))
	if err != nil || fmt.Sprint(refs) != "[nodes.a.outputs.y nodes.b.outputs.s]" {
		t.Fatalf("BindingRefs = %v, %v", refs, err)
	}
}
