package executor

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

func TestLargeWorkflowsCompactSucceededNodes(t *testing.T) {
	var b strings.Builder
	b.WriteString(strings.Replace(kindTasks, "sq: {", "sq: {retries: 1, ", 1) + "nodes:\n")
	for i := 0; i < CompactAbove+50; i++ {
		fmt.Fprintf(&b, "- {name: n%d, task: sq, inputs: {x: %d}}\n", i, i)
	}
	b.WriteString("- {name: last, task: sq, inputs: {x: \"{{nodes.n7.outputs.y}}\"}}\n")
	e, fp, _, wf := setup(t, b.String())
	runUntilDone(t, e, fp, wf, func(id string, in map[string]json.RawMessage) plugins.PhaseInfo {
		if id == "n3" && fp.handled[id] == 1 {
			return fail(1, "flake") // n3 keeps its full history: it failed once
		}
		return squareAnswer(id, in)
	})
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s: %s", wf.Status.Phase, wf.Status.Message)
	}
	if wf.Status.CompactedNodes == "" || len(wf.Status.Nodes) > 5 {
		t.Fatalf("%d nodes left in status.nodes, compacted field %d bytes; want nearly all packed", len(wf.Status.Nodes), len(wf.Status.CompactedNodes))
	}
	all, err := wf.Status.AllNodes()
	if err != nil {
		t.Fatal(err)
	}
	n7 := all["n7"]
	info, ok := ParseCompact(n7.Compact)
	if !ok || len(n7.Attempts) != 0 || info.Cluster != "c1" || info.Attempts != 1 || string(n7.Outputs["y"].Raw) != "49" {
		t.Fatalf("n7 = %+v, want compact on c1 with 1 attempt and its outputs", n7)
	}
	if got := string(all["last"].Outputs["y"].Raw); got != "2401" {
		t.Fatalf("last read %s through a compacted node, want 2401", got)
	}
	if n3 := all["n3"]; n3.Compact != "" || len(n3.Attempts) != 2 {
		t.Fatalf("n3 = %+v, want a full history", n3)
	}
	raw, _ := json.Marshal(n7)
	if len(raw) > 100 {
		t.Fatalf("a compact node takes %d bytes: %s", len(raw), raw)
	}
	before := len(fp.aborted)
	if _, err := e.Cleanup(t.Context(), wf, CleanupPolicy{Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := len(fp.aborted) - before; got != CompactAbove+51 {
		t.Fatalf("cleanup reached %d nodes, want every one (%d)", got, CompactAbove+51)
	}
}
