package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/data/location"
	"github.com/rotor-dev/rotor/data/offload"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/plugins"
)

const offloadSpec = `
tasks:
  make: {outputs: {rows: array}, container: {image: x, command: [sh]}}
  count: {inputs: {rows: array}, outputs: {n: integer}, container: {image: x, command: [sh]}}
  say: {inputs: {msg: string}, outputs: {text: string}, container: {image: x, command: [sh]}}
  echo: {inputs: {item: string}, outputs: {text: string}, container: {image: x, command: [sh]}}
nodes:
- {name: make, task: make}
- {name: count, task: count, inputs: {rows: "{{nodes.make.outputs.rows}}"}}
- {name: mixed, task: say, inputs: {msg: "rows: {{nodes.make.outputs.rows}}"}}
- {name: m, map: {task: echo, over: "{{nodes.make.outputs.rows}}"}}
- name: b
  branch:
    cases:
    - {if: "{{nodes.count.outputs.n}} > 10", task: say, inputs: {msg: many}}
    else: {task: say, inputs: {msg: few}}
outputs: {all: "{{nodes.m.outputs.text}}", joined: "{{nodes.m.outputs.text}} and more"}
`

// valuesOver is the executor's Values over one location.
func valuesOver(st *store.Store) location.Values {
	return location.Values{R: &location.Resolver{Default: &location.Location{Store: st, Values: offload.New(st, 0, 0)}}}
}

func fileValues(t *testing.T) location.Values {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return valuesOver(st)
}

// TestLargeValuesStayOutOfTheStatus: a task's 40 KB array output is
// offloaded before it reaches the status; a node given it whole gets the
// reference, unread; a string that interpolates it, the map that runs
// over it and the workflow outputs that compute with the gathered list
// read it back; the map's gathered outputs (40 small ones, 5 KB together)
// are offloaded too; the status stays bounded while the data is over 45 KB, and no value in
// it is over the inline limit
// (each item's own small output stays inline: compacting those is the
// very-large-workflows work).
func TestLargeValuesStayOutOfTheStatus(t *testing.T) {
	e, fp, _, wf := setup(t, offloadSpec)
	vals := fileValues(t)
	e.Values = vals
	const items = 40
	rows := make([]string, items)
	for i := range rows {
		rows[i] = fmt.Sprintf("row-%02d-%s", i, strings.Repeat("r", 1000))
	}
	rowsJSON, _ := json.Marshal(rows)
	var materialized json.RawMessage
	runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
		switch {
		case id == "make":
			return ok(`{"rows": ` + string(rowsJSON) + `}`)
		case id == "count":
			materialized = in["rows"]
			return ok(`{"n": 40}`)
		case strings.HasPrefix(id, "m/"):
			var item string
			_ = json.Unmarshal(in["item"], &item)
			b, _ := json.Marshal(map[string]string{"text": "echo " + item[:110]})
			return ok(string(b))
		}
		return squareAnswer(id, in)
	})
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s: %s", wf.Status.Phase, wf.Status.Message)
	}
	ctx := context.Background()
	mustRef := func(what string, raw json.RawMessage) ref.Ref {
		t.Helper()
		r, isRef, err := ref.ParseOffloaded(raw)
		if err != nil || !isRef {
			t.Fatalf("%s = %.80s (%v), want an offloaded reference", what, raw, err)
		}
		return r
	}
	made := mustRef("make's rows", wf.Status.Nodes["make"].Outputs["rows"].Raw)
	if made.Size != int64(len(rowsJSON)) {
		t.Fatalf("make's rows reference %d bytes, want %d", made.Size, len(rowsJSON))
	}
	// Passed whole: the task got the reference, not the bytes.
	if r := mustRef("count's input", materialized); r != made {
		t.Fatalf("count got %+v, want make's reference %+v", r, made)
	}
	// Interpolated: the rendered string holds the value (read back), and,
	// over the inline limit itself, reaches the pod offloaded (as a file).
	rendered := mustRef("mixed's rendered msg", fp.inputs["mixed"]["msg"])
	if !strings.Contains(rendered.URI, "/mixed/0/values/input-msg-") {
		t.Fatalf("mixed's msg stored at %s, want under the node's prefix", rendered.URI)
	}
	msgRaw, err := vals.Materialize(ctx, fp.inputs["mixed"]["msg"])
	if err != nil {
		t.Fatal(err)
	}
	var msg string
	_ = json.Unmarshal(msgRaw, &msg)
	if !strings.HasPrefix(msg, `rows: ["row-00-`) || len(msg) < len(rowsJSON) {
		t.Fatalf("mixed's msg starts %.40q (%d bytes), want the rows rendered in", msg, len(msg))
	}
	// The map ran over every row, each item a value.
	for i := 0; i < items; i++ {
		if p := wf.Status.Nodes[fmt.Sprintf("m/%d", i)].Phase; p != v1alpha1.NodeSucceeded {
			t.Fatalf("item %d is %s, want Succeeded", i, p)
		}
	}
	var item string
	_ = json.Unmarshal(fp.inputs["m/7"]["item"], &item)
	if item != rows[7] {
		t.Fatalf("item 7 = %.20q, want row 7", item)
	}
	// The gathered outputs are offloaded, and read back to the list.
	gathered := wf.Status.Nodes["m"].Outputs["text"].Raw
	mustRef("m's gathered text", gathered)
	back, err := vals.Materialize(ctx, gathered)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	if err := json.Unmarshal(back, &texts); err != nil || len(texts) != items || texts[3] != "echo "+rows[3][:110] {
		t.Fatalf("gathered list: %d texts (%v), want %d, each echo of its row", len(texts), err, items)
	}
	// The workflow's outputs: one passed through, one computed (read back,
	// then offloaded again).
	if string(wf.Status.Outputs["all"].Raw) != string(gathered) {
		t.Fatalf("output all = %.80s, want m's reference passed as it is", wf.Status.Outputs["all"].Raw)
	}
	joined, err := vals.Materialize(ctx, wf.Status.Outputs["joined"].Raw)
	mustRef("output joined", wf.Status.Outputs["joined"].Raw)
	if err != nil || !strings.HasSuffix(string(joined), ` and more"`) || !strings.Contains(string(joined), "echo row-39") {
		t.Fatalf("output joined = %.60s…, %v", joined, err)
	}
	if p := wf.Status.Nodes["b/case-0"].Phase; p != v1alpha1.NodeSucceeded {
		t.Fatalf("the branch did not take case 0 (%s)", p)
	}
	// Bounded: the status is a few KB, the values it stands for over 60 KB.
	status, _ := json.Marshal(wf.Status)
	data := len(rowsJSON) + len(back) + len(joined)
	if data < 45_000 || len(status) > 24_000 {
		t.Fatalf("status %d bytes for %d bytes of values; want the values over 45 KB and the status under 24 KB", len(status), data)
	}
	for id, n := range wf.Status.Nodes {
		for k, v := range n.Outputs {
			if len(v.Raw) > ref.InlineLimit {
				t.Errorf("node %s output %s is %d bytes inline", id, k, len(v.Raw))
			}
		}
	}
	t.Logf("status %d bytes; values %d bytes", len(status), data)
}

// TestWithoutAStoreValuesStayInline: no Values (no data plane), the same
// workflow keeps its values inline, as before offloading existed.
func TestWithoutAStoreValuesStayInline(t *testing.T) {
	e, fp, _, wf := setup(t, offloadSpec)
	big := `["` + strings.Repeat("x", 5000) + `"]`
	runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
		switch {
		case id == "make":
			return ok(`{"rows": ` + big + `}`)
		case id == "count":
			return ok(`{"n": 1}`)
		case strings.HasPrefix(id, "m/"):
			return ok(`{"text": "t"}`)
		}
		return squareAnswer(id, in)
	})
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Nodes["make"].Outputs["rows"].Raw) != big {
		t.Fatalf("workflow %s (%s), rows %.40s", wf.Status.Phase, wf.Status.Message, wf.Status.Nodes["make"].Outputs["rows"].Raw)
	}
}

// TestStoreDownWaits: a map over an offloaded list whose store does not
// answer waits, saying why, and asks to be looked at again; it neither
// fails nor starts items. Without any store the same workflow fails
// with what to set.
func TestStoreDownWaits(t *testing.T) {
	src := `
inputs: {rows: {type: array}}
tasks:
  echo: {inputs: {item: string}, outputs: {text: string}, container: {image: x, command: [sh]}}
nodes:
- {name: m, map: {task: echo, over: "{{workflow.inputs.rows}}"}}
`
	e, fp, _, wf := setup(t, src)
	wf.Spec.Inputs["rows"] = v1alpha1.WorkflowInput{Type: v1alpha1.TypeArray, Value: &apiextJSON{Raw: json.RawMessage(
		`{"$ref": {"uri": "s3://bucket/ns/wf/uid-1/make/0/outputs/rows.json", "size": 9000, "sha256": "` + strings.Repeat("ab", 32) + `"}}`)}}
	down, err := store.Open(context.Background(), store.Config{URL: "s3://bucket?endpoint=http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	e.Values = valuesOver(down)
	res := step(t, e, wf)
	m := wf.Status.Nodes["m"]
	if m.Phase.IsTerminal() || m.Reason != ReasonWaitingForStore || !strings.Contains(m.Message, "unavailable") || res.RequeueAfter <= 0 || res.RequeueAfter > storeWait {
		t.Fatalf("node m: %s %s %q, requeue after %s; want it waiting for the store, looked at again within %s", m.Phase, m.Reason, m.Message, res.RequeueAfter, storeWait)
	}
	if len(fp.handled) != 0 {
		t.Fatalf("items started while their list was unreadable: %v", fp.handled)
	}

	e.Values = nil
	wf.Status = v1alpha1.WorkflowStatus{}
	step(t, e, wf)
	if m := wf.Status.Nodes["m"]; m.Phase != v1alpha1.NodeFailed || !strings.Contains(m.Message, "--raw-data-url") {
		t.Fatalf("no store: node m %s %q, want Failed naming --raw-data-url", m.Phase, m.Message)
	}
}

// TestMapOverADirectory: a map over a directory output runs once per
// file, in path order, each item a file reference checked against the
// directory's manifest; a directory reference whose digest is not its
// manifest's fails the map.
func TestMapOverADirectory(t *testing.T) {
	src := `
tasks:
  split: {outputs: {shards: directory}, container: {image: x, command: [sh]}}
  sum: {inputs: {shard: file}, outputs: {total: integer}, container: {image: x, command: [sh]}}
nodes:
- {name: split, task: split}
- {name: m, map: {task: sum, item: shard, over: "{{nodes.split.outputs.shards}}"}}
`
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dirURI := ref.Join(st.Root(), "ns", "wf", "uid-1", "split", "0", "outputs", "shards") + "/"
	var entries []ref.Entry
	for _, name := range []string{"part-2.csv", "part-0.csv", "part-1.csv"} {
		r, err := st.Put(ctx, dirURI+name, strings.NewReader(name))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, ref.Entry{Path: name, Size: r.Size, SHA256: r.SHA256})
	}
	man, _ := ref.NewManifest(entries)
	if _, err := st.Put(ctx, dirURI+ref.ManifestName, strings.NewReader(string(man.Encode()))); err != nil {
		t.Fatal(err)
	}
	for _, good := range []bool{true, false} {
		dir := man.Ref(dirURI)
		if !good {
			dir.SHA256 = strings.Repeat("0", 64)
		}
		dirJSON, _ := json.Marshal(dir)
		e, fp, _, wf := setup(t, src)
		e.Values = valuesOver(st)
		runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
			if id == "split" {
				return ok(`{"shards": ` + string(dirJSON) + `}`)
			}
			return ok(`{"total": 1}`)
		})
		if !good {
			if m := wf.Status.Nodes["m"]; m.Phase != v1alpha1.NodeFailed || !strings.Contains(m.Message, "changed after it was written") {
				t.Fatalf("a directory whose digest is wrong: m %s %q", m.Phase, m.Message)
			}
			continue
		}
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("workflow %s: %s", wf.Status.Phase, wf.Status.Message)
		}
		for i, want := range []string{"part-0.csv", "part-1.csv", "part-2.csv"} {
			var f ref.Ref
			if err := json.Unmarshal(fp.inputs[fmt.Sprintf("m/%d", i)]["shard"], &f); err != nil || f.URI != dirURI+want || f.IsDir() {
				t.Fatalf("item %d's shard = %+v (%v), want the file %s", i, f, err, want)
			}
		}
		if _, ran := fp.inputs["m/3"]; ran || string(wf.Status.Nodes["m"].Outputs["total"].Raw) != "[1,1,1]" {
			t.Fatalf("map ran a 4th item (%v) or gathered %s, want 3 items", ran, wf.Status.Nodes["m"].Outputs["total"].Raw)
		}
	}
}

// TestOnlyTheNamespacesOwnValuesAreRead: an offloaded value (or a
// directory to map over) written by hand into a workflow's spec that
// names another namespace's object is refused, and the object is never
// read: what the propeller reads ends up in this tenant's pods.
func TestOnlyTheNamespacesOwnValuesAreRead(t *testing.T) {
	vals := fileValues(t)
	ctx := context.Background()
	other := ref.Join(vals.Root("other-team"), "other-team", "wf", "u9", "a", "0") + "/"
	theirs, err := vals.Offload(ctx, other, "secret", json.RawMessage(`"`+strings.Repeat("s", 5000)+`"`))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := json.Marshal(ref.Ref{URI: other + "outputs/d/", Size: 1, SHA256: strings.Repeat("ab", 32), Files: 1})
	for name, c := range map[string]struct{ typ, over, node, nodes string }{
		"an interpolated value":  {"array", string(theirs), "s", `- {name: s, task: say, inputs: {msg: "got {{workflow.inputs.stolen}}"}}`},
		"a map over a directory": {"directory", string(dir), "m", `- {name: m, map: {task: read, item: f, over: "{{workflow.inputs.stolen}}"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			src := `
inputs: {stolen: {type: ` + c.typ + `}}
tasks:
  read: {inputs: {f: file}, outputs: {n: integer}, container: {image: x, command: [sh]}}
  say: {inputs: {msg: string}, outputs: {text: string}, container: {image: x, command: [sh]}}
nodes:
` + c.nodes + `
`
			e, fp, _, wf := setup(t, src)
			e.Values = vals
			wf.Spec.Inputs["stolen"] = v1alpha1.WorkflowInput{Type: v1alpha1.ValueType(c.typ), Value: &apiextJSON{Raw: json.RawMessage(c.over)}}
			step(t, e, wf)
			n := wf.Status.Nodes[c.node]
			if n.Phase != v1alpha1.NodeFailed || !strings.Contains(n.Message, "not in namespace ns's part") {
				t.Fatalf("node %s: %s %q; want Failed, refusing the other namespace's object", c.node, n.Phase, n.Message)
			}
			if len(fp.handled) != 0 {
				t.Fatalf("tasks ran with the other namespace's data: %v", fp.handled)
			}
		})
	}
	// Passed whole, the reference reaches the task unread (the pod
	// plugin refuses it before any pod); a plugin that would read it
	// (an http body) is refused by Materialize.
	e, fp, _, wf := setup(t, `
inputs: {stolen: {type: array}}
tasks:
  send: {inputs: {rows: array}, container: {image: x, command: [sh]}}
nodes:
- {name: s, task: send, inputs: {rows: "{{workflow.inputs.stolen}}"}}
`)
	e.Values = vals
	wf.Spec.Inputs["stolen"] = v1alpha1.WorkflowInput{Type: v1alpha1.TypeArray, Value: &apiextJSON{Raw: theirs}}
	fp.script = func(string, map[string]json.RawMessage) plugins.PhaseInfo {
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning}
	}
	step(t, e, wf)
	tc := fp.last["s"]
	if tc == nil || tc.Materialize == nil {
		t.Fatal("the task got no Materialize")
	}
	if v, err := tc.Materialize(ctx, tc.Inputs["rows"]); err == nil || !strings.Contains(err.Error(), "not in namespace ns's part") {
		t.Fatalf("Materialize of another namespace's value: %.40s, %v; want a refusal", v, err)
	}
}

// TestOutputsWaitForTheStore: a task that succeeded with an output too
// large to keep inline, while the store does not answer, stays as it is
// with reason WaitingForObjectStore (not failed, not lost); once the
// store answers, the next round offloads the output and the node
// succeeds.
func TestOutputsWaitForTheStore(t *testing.T) {
	e, fp, _, wf := setup(t, `
tasks:
  make: {outputs: {rows: array}, container: {image: x, command: [sh]}}
nodes:
- {name: make, task: make}
`)
	down, err := store.Open(context.Background(), store.Config{URL: "s3://bucket?endpoint=http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	e.Values = valuesOver(down)
	big := `{"rows": ["` + strings.Repeat("r", 5000) + `"]}`
	fp.script = func(string, map[string]json.RawMessage) plugins.PhaseInfo { return ok(big) }
	res := step(t, e, wf)
	n := wf.Status.Nodes["make"]
	if n.Phase.IsTerminal() || n.Reason != ReasonWaitingForStore || res.RequeueAfter <= 0 || len(n.Attempts) != 1 {
		t.Fatalf("store down: node %s %s %q, %d attempts, requeue %s; want it waiting, one attempt", n.Phase, n.Reason, n.Message, len(n.Attempts), res.RequeueAfter)
	}
	e.Values = fileValues(t)
	step(t, e, wf)
	n = wf.Status.Nodes["make"]
	if n.Phase != v1alpha1.NodeSucceeded || len(n.Attempts) != 1 {
		t.Fatalf("store back: node %s (%s), %d attempts; want Succeeded with its one attempt", n.Phase, n.Message, len(n.Attempts))
	}
	if _, isRef, _ := ref.ParseOffloaded(n.Outputs["rows"].Raw); !isRef {
		t.Fatalf("rows = %.40s, want offloaded", n.Outputs["rows"].Raw)
	}
}
