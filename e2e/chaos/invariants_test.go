package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func TestLost(t *testing.T) {
	want := []Expectation{
		{Namespace: "n", Name: "ok", Kind: "fib", Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"fib": "13", "vs": "[1, 2]"}},
		{Namespace: "n", Name: "fails", Kind: "fail", Phase: v1alpha1.WorkflowFailed},
	}
	clean := map[string]Outcome{
		// JSON compared canonically: the apiserver may write [1,2].
		"n/ok":    {Found: true, Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"fib": "13", "vs": "[1,2]"}},
		"n/fails": {Found: true, Phase: v1alpha1.WorkflowFailed, Outputs: map[string]string{}},
	}
	if got := Lost(want, clean); len(got) != 0 {
		t.Fatalf("clean outcomes flagged: %v", got)
	}
	for name, c := range map[string]struct {
		key  string
		o    Outcome
		says string
	}{
		"gone":          {"n/ok", Outcome{}, "not found"},
		"never ended":   {"n/ok", Outcome{Found: true, Phase: v1alpha1.WorkflowRunning}, `still "Running"`},
		"wrong phase":   {"n/fails", Outcome{Found: true, Phase: v1alpha1.WorkflowSucceeded}, "want Failed"},
		"wrong output":  {"n/ok", Outcome{Found: true, Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"fib": "8", "vs": "[1,2]"}}, "output fib = 8, want 13"},
		"output missed": {"n/ok", Outcome{Found: true, Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"fib": "13"}}, "outputs"},
	} {
		t.Run(name, func(t *testing.T) {
			got := map[string]Outcome{}
			for k, v := range clean {
				got[k] = v
			}
			got[c.key] = c.o
			lost := Lost(want, got)
			if len(lost) != 1 || !strings.HasPrefix(lost[0], c.key) || !strings.Contains(lost[0], c.says) {
				t.Fatalf("lost = %q, want one entry for %s saying %q", lost, c.key, c.says)
			}
		})
	}
}

func TestOrphans(t *testing.T) {
	ended := map[string]string{"e": "n/done"}
	running := map[string]string{"r": "n/busy"}
	clean := []TaskPod{
		{Target: "t1", Namespace: "n", Name: "done-a-0", WorkflowUID: "e", Finished: true},
		{Target: "t1", Namespace: "n", Name: "done-b-0", WorkflowUID: "e", Deleting: true},
		{Target: "t2", Namespace: "n", Name: "busy-a-0", WorkflowUID: "r"},
	}
	if o := Orphans(clean, ended, running); len(o) != 0 {
		t.Fatalf("clean pods flagged: %v", o)
	}
	bad := append(clean,
		TaskPod{Target: "t2", Namespace: "n", Name: "done-c-0", WorkflowUID: "e"},
		TaskPod{Target: "t1", Namespace: "n", Name: "gone-a-0", WorkflowUID: "g", Finished: true})
	o := Orphans(bad, ended, running)
	if len(o) != 2 || !strings.Contains(o[0], "gone-a-0: its workflow (uid g) is gone") || !strings.Contains(o[1], "done-c-0: still running") {
		t.Fatalf("orphans = %q, want gone-a-0 (workflow gone) and done-c-0 (still running)", o)
	}
	if o := Orphans(clean, nil, nil); len(o) != len(clean) {
		t.Fatalf("after deleting every workflow, %d of %d pods flagged", len(o), len(clean))
	}
}

func TestRepeatedKeys(t *testing.T) {
	if r := RepeatedKeys(map[string]int{"u/f2/0": 1, "u/f3/0": 1}); len(r) != 0 {
		t.Fatalf("clean calls flagged: %v", r)
	}
	r := RepeatedKeys(map[string]int{"u/f2/0": 1, "u/f3/0": 2})
	if len(r) != 1 || r[0] != "u/f3/0: 2 calls" {
		t.Fatalf("repeated = %q, want u/f3/0 with 2 calls", r)
	}
}

func TestSummarize(t *testing.T) {
	if s := Summarize(nil); s.N != 0 {
		t.Fatalf("empty: %+v", s)
	}
	s := Summarize([]time.Duration{5 * time.Second, time.Second, 3 * time.Second})
	if s.N != 3 || s.P50 != 3*time.Second || s.Max != 5*time.Second {
		t.Fatalf("%+v, want n=3 p50=3s max=5s", s)
	}
}

func TestExplainRepeats(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	windows := []Window{{Kind: Etcd, From: at(10), To: at(13)}, {Kind: ControlAPIServer, From: at(30), To: at(32)}}
	calls := map[string]CallSpan{
		"once":         {Calls: 1, First: at(50), Last: at(50)},
		"during-etcd":  {Calls: 4, First: at(11), Last: at(14)},
		"just-after":   {Calls: 2, First: at(33), Last: at(33.5)}, // within the 2 s slack
		"no-fault":     {Calls: 2, First: at(60), Last: at(61)},
		"spans-both":   {Calls: 9, First: at(12), Last: at(31)},
		"before-slack": {Calls: 2, First: at(5), Last: at(7.5)},
	}
	explained, unexplained := ExplainRepeats(calls, windows, 2*time.Second)
	if len(explained) != 3 || !strings.HasPrefix(explained[0], "during-etcd: 4 calls") || !strings.HasPrefix(explained[1], "just-after") ||
		!strings.Contains(explained[2], "[control-apiserver etcd]") {
		t.Fatalf("explained = %q", explained)
	}
	if len(unexplained) != 2 || !strings.HasPrefix(unexplained[0], "before-slack") || !strings.HasPrefix(unexplained[1], "no-fault") {
		t.Fatalf("unexplained = %q, want before-slack and no-fault", unexplained)
	}
}

func TestRetriesMisspent(t *testing.T) {
	want := []Expectation{
		{Namespace: "a", Name: "fail", Kind: "fail", UserFailures: map[string]int{"a": 2}},
		{Namespace: "a", Name: "fib", Kind: "fib"},
		{Namespace: "a", Name: "open", Kind: "fib"},
	}
	got := map[string]Outcome{
		"a/fail": {Found: true, Phase: "Failed", UserFailures: map[string]int{"a": 2}},
		"a/fib":  {Found: true, Phase: "Succeeded"},
		"a/open": {Found: true, Phase: "Running", UserFailures: map[string]int{"x": 1}}, // not ended: Lost's business
	}
	if p := RetriesMisspent(want, got); len(p) != 0 {
		t.Fatalf("as designed, got %v", p)
	}
	got["a/fail"] = Outcome{Found: true, Phase: "Failed", UserFailures: map[string]int{"a": 1}}
	got["a/fib"] = Outcome{Found: true, Phase: "Succeeded", UserFailures: map[string]int{"f2": 1}}
	p := RetriesMisspent(want, got)
	if len(p) != 2 || !strings.Contains(p[0], "a/fail (fail): node a has 1") || !strings.Contains(p[1], "a/fib (fib): node f2 has 1") {
		t.Fatalf("got %v, want the early-exhausted fail node and the fib node charged a user failure", p)
	}
}
