package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// Outcome is what a workflow ended with, as read back at the end.
type Outcome struct {
	Found   bool
	Phase   v1alpha1.WorkflowPhase
	Message string
	Outputs map[string]string
	// UserFailures counts, by node path, the failed attempts not marked
	// System: those that spent the task's retries.
	UserFailures map[string]int
}

// RetriesMisspent lists, sorted, the ended workflows whose user failures
// differ from what their tasks do: a system failure (pod lost with its
// target, a replica's crash) that spent a user retry shows as one more
// user failure on a node that should have none, or as a designed failure
// that ran out of attempts early. Workflows Lost reports are skipped.
func RetriesMisspent(want []Expectation, got map[string]Outcome) []string {
	var out []string
	for _, e := range want {
		o := got[e.Key()]
		if !o.Found || !o.Phase.IsTerminal() {
			continue
		}
		nodes := map[string]bool{}
		for n := range e.UserFailures {
			nodes[n] = true
		}
		for n := range o.UserFailures {
			nodes[n] = true
		}
		for n := range nodes {
			if w, g := e.UserFailures[n], o.UserFailures[n]; w != g {
				out = append(out, fmt.Sprintf("%s (%s): node %s has %d attempts failed by the task, want %d", e.Key(), e.Kind, n, g, w))
			}
		}
	}
	sort.Strings(out)
	return out
}

// Lost lists, sorted, every expected workflow that did not end (or is
// gone) or ended in another phase or with other outputs, each with why.
func Lost(want []Expectation, got map[string]Outcome) []string {
	var out []string
	for _, e := range want {
		o := got[e.Key()]
		switch {
		case !o.Found:
			out = append(out, fmt.Sprintf("%s (%s): not found", e.Key(), e.Kind))
		case !o.Phase.IsTerminal():
			out = append(out, fmt.Sprintf("%s (%s): still %q", e.Key(), e.Kind, o.Phase))
		case o.Phase != e.Phase:
			out = append(out, fmt.Sprintf("%s (%s): ended %s, want %s (%s)", e.Key(), e.Kind, o.Phase, e.Phase, o.Message))
		default:
			if d := outputsDiffer(e.Outputs, o.Outputs); d != "" {
				out = append(out, fmt.Sprintf("%s (%s): %s", e.Key(), e.Kind, d))
			}
		}
	}
	sort.Strings(out)
	return out
}

func outputsDiffer(want, got map[string]string) string {
	if len(want) != len(got) {
		return fmt.Sprintf("outputs %v, want %v", got, want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !sameJSON(w, g) {
			return fmt.Sprintf("output %s = %s, want %s", k, g, w)
		}
	}
	return ""
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// TaskPod is a task pod found in a target at the end.
type TaskPod struct {
	Target, Namespace, Name string
	// WorkflowUID is its rotor.dev/workflow-uid label.
	WorkflowUID string
	// Finished: phase Succeeded or Failed.
	Finished bool
	// Deleting: it has a deletion timestamp.
	Deleting bool
}

// Orphans lists the pods that should not be there: a pod whose workflow
// is gone (its UID not in ended nor running), or an unfinished pod (not
// being deleted) of a workflow that has ended. ended and running map
// workflow UIDs to namespace/name. A finished pod of an ended workflow
// is not an orphan: Rotor keeps it for its logs until the workflow goes.
func Orphans(pods []TaskPod, ended, running map[string]string) []string {
	var out []string
	for _, p := range pods {
		where := fmt.Sprintf("%s %s/%s", p.Target, p.Namespace, p.Name)
		_, isEnded := ended[p.WorkflowUID]
		_, isRunning := running[p.WorkflowUID]
		switch {
		case !isEnded && !isRunning:
			out = append(out, where+": its workflow (uid "+p.WorkflowUID+") is gone")
		case isEnded && !p.Finished && !p.Deleting:
			out = append(out, where+": still running, its workflow "+ended[p.WorkflowUID]+" has ended")
		}
	}
	sort.Strings(out)
	return out
}

// RepeatedKeys lists, sorted, the idempotency keys the http server was
// called with more than once (first calls only: polls are not counted).
func RepeatedKeys(calls map[string]int) []string {
	var out []string
	for k, n := range calls {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s: %d calls", k, n))
		}
	}
	sort.Strings(out)
	return out
}

// Summary is p50 and max of a set of durations (zero when empty).
type Summary struct {
	N        int
	P50, Max time.Duration
}

// Summarize sorts a copy of ds and returns its count, median and max.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return Summary{N: len(s), P50: s[(len(s)-1)/2], Max: s[len(s)-1]}
}

func (s Summary) String() string {
	if s.N == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d p50=%s max=%s", s.N, s.P50.Round(10*time.Millisecond), s.Max.Round(10*time.Millisecond))
}

// CallSpan is what the http server saw of one idempotency key.
type CallSpan struct {
	Calls       int
	First, Last time.Time
}

// Window is when a fault had its component down: from the fault to the
// component being back (restarted, thawed).
type Window struct {
	Kind     Kind
	From, To time.Time
}

// ExplainRepeats splits the repeated keys of calls into those whose calls
// (First to Last) meet a fault window widened by slack on each side —
// the http plugin repeats a call when the round that made it could not
// record its answer, which a fault of the control plane or of the
// replica causes — and those that meet none, which no fault explains.
// Each explained entry names the kinds of the windows it met.
func ExplainRepeats(calls map[string]CallSpan, windows []Window, slack time.Duration) (explained, unexplained []string) {
	for k, c := range calls {
		if c.Calls < 2 {
			continue
		}
		kinds := map[Kind]bool{}
		for _, w := range windows {
			if !c.First.After(w.To.Add(slack)) && !c.Last.Before(w.From.Add(-slack)) {
				kinds[w.Kind] = true
			}
		}
		if len(kinds) == 0 {
			unexplained = append(unexplained, fmt.Sprintf("%s: %d calls over %s, during no fault", k, c.Calls, c.Last.Sub(c.First).Round(time.Millisecond)))
			continue
		}
		var ks []string
		for kind := range kinds {
			ks = append(ks, string(kind))
		}
		sort.Strings(ks)
		explained = append(explained, fmt.Sprintf("%s: %d calls over %s, during %v", k, c.Calls, c.Last.Sub(c.First).Round(time.Millisecond), ks))
	}
	sort.Strings(explained)
	sort.Strings(unexplained)
	return explained, unexplained
}
