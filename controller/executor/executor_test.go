package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/plugins"
)

// fakePlugin answers Handle from a per-node script; the last answer
// repeats. It records inputs and aborts.
type fakePlugin struct {
	// script, if set, answers attempts that have no scripted answers.
	script  func(id string, inputs map[string]json.RawMessage) plugins.PhaseInfo
	answers map[string][]plugins.PhaseInfo
	inputs  map[string]map[string]json.RawMessage
	handled map[string]int
	aborted map[string]int
	// abortedOn lists each abort as node/attempt@cluster.
	abortedOn []string
	// errs, if set for a node, is what Handle returns for it.
	errs map[string]error
	// last is each node's latest TaskContext.
	last map[string]*plugins.TaskContext
}

func newFake() *fakePlugin {
	return &fakePlugin{answers: map[string][]plugins.PhaseInfo{}, inputs: map[string]map[string]json.RawMessage{},
		handled: map[string]int{}, aborted: map[string]int{}}
}

func (f *fakePlugin) Type() string { return "pod" }
func (f *fakePlugin) Handle(_ context.Context, tc *plugins.TaskContext) (plugins.PhaseInfo, error) {
	n := tc.ID.Node
	f.inputs[n] = tc.Inputs
	f.handled[n]++
	if f.last == nil {
		f.last = map[string]*plugins.TaskContext{}
	}
	f.last[n] = tc
	if err := f.errs[n]; err != nil {
		return plugins.PhaseInfo{}, err
	}
	script := f.answers[n]
	if len(script) == 0 {
		if f.script != nil {
			a := f.script(n, tc.Inputs)
			a.Resource = fmt.Sprintf("pod-%s-%d", n, tc.ID.Attempt)
			return a, nil
		}
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning, Resource: "pod-" + n}, nil
	}
	a := script[0]
	if len(script) > 1 {
		f.answers[n] = script[1:]
	}
	a.Resource = fmt.Sprintf("pod-%s-%d", n, tc.ID.Attempt)
	return a, nil
}
func (f *fakePlugin) Abort(_ context.Context, tc *plugins.TaskContext) error {
	f.aborted[tc.ID.Node]++
	if tc.Cluster != nil {
		f.abortedOn = append(f.abortedOn, fmt.Sprintf("%s/%d@%s", tc.ID.Node, tc.ID.Attempt, tc.Cluster.Name))
	}
	return nil
}
func (f *fakePlugin) Finalize(context.Context, *plugins.TaskContext) error { return nil }

type oneCluster struct{ c *plugins.Cluster }

func (o oneCluster) Pick(plugins.TaskID, *v1alpha1.TaskTemplate, map[string]string) (*plugins.Cluster, error) {
	return o.c, nil
}
func (o oneCluster) Get(name string) (*plugins.Cluster, bool) { return o.c, name == o.c.Name }
func (o oneCluster) Health(name string) plugins.ClusterHealth {
	return plugins.ClusterHealth{Known: name == o.c.Name}
}

func parseSpec(t *testing.T, src string) v1alpha1.WorkflowSpec {
	t.Helper()
	var spec v1alpha1.WorkflowSpec
	if err := manifest.Unmarshal([]byte(src), &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func setup(t *testing.T, src string) (*Executor, *fakePlugin, *clocktesting.FakeClock, *v1alpha1.Workflow) {
	t.Helper()
	wf := &v1alpha1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: "wf", Namespace: "ns", UID: "uid-1"}}
	if err := manifest.Unmarshal([]byte(src), &wf.Spec); err != nil {
		t.Fatal(err)
	}
	fp := newFake()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := &Executor{Plugins: plugins.NewRegistry(fp), Clusters: oneCluster{&plugins.Cluster{Name: "c1"}}, Clock: clk, MaxSystemRetries: 2}
	return e, fp, clk, wf
}

func step(t *testing.T, e *Executor, wf *v1alpha1.Workflow) Result {
	t.Helper()
	res, err := e.Reconcile(context.Background(), wf)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return res
}

func ok(outputs string) plugins.PhaseInfo {
	return plugins.PhaseInfo{Phase: plugins.PhaseSucceeded, Outputs: json.RawMessage(outputs)}
}

func fail(code int32, msg string) plugins.PhaseInfo {
	return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "ExitCode", ExitCode: &code, Message: msg}
}

const chain = `
inputs: {n: {type: integer, value: 3}}
tasks:
  sq: {inputs: {x: integer}, outputs: {y: integer}, retries: 1, timeout: 30s, container: {image: x, command: [sh]}}
nodes:
- {name: a, task: sq, inputs: {x: "{{workflow.inputs.n}}"}}
- {name: b, task: sq, inputs: {x: "{{nodes.a.outputs.y}}"}}
outputs: {result: "{{nodes.b.outputs.y}}"}
`

func TestChainRunsInOrderAndPassesOutputs(t *testing.T) {
	e, fp, _, wf := setup(t, chain)
	fp.answers["a"] = []plugins.PhaseInfo{{Phase: plugins.PhaseQueued}, ok(`{"y": 9}`)}
	fp.answers["b"] = []plugins.PhaseInfo{ok(`{"y": 81}`)}
	step(t, e, wf)
	if fp.handled["b"] != 0 || wf.Status.Nodes["a"].Phase != v1alpha1.NodeQueued {
		t.Fatalf("round 1: b handled %d times, a is %s; want b untouched and a Queued", fp.handled["b"], wf.Status.Nodes["a"].Phase)
	}
	step(t, e, wf) // a succeeds, b launches and succeeds in the same round
	if got := string(fp.inputs["b"]["x"]); got != "9" {
		t.Fatalf("b got x=%s, want 9", got)
	}
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["result"].Raw) != "81" {
		t.Fatalf("workflow %s with outputs %v, want Succeeded with result 81", wf.Status.Phase, wf.Status.Outputs)
	}
	if a := wf.Status.Nodes["a"].Attempts; len(a) != 1 || a[0].Cluster != "c1" || a[0].Pod != "pod-a-0" {
		t.Fatalf("attempts of a = %+v", a)
	}
}

func TestFailureSkipsDownstreamAndAbortsRunning(t *testing.T) {
	e, fp, _, wf := setup(t, `
tasks: {t: {container: {image: x, command: [sh]}}}
nodes:
- {name: a, task: t}
- {name: slow, task: t}
- {name: down, task: t, dependsOn: [a]}
`)
	fp.answers["a"] = []plugins.PhaseInfo{fail(2, "exit 2")}
	step(t, e, wf)
	st := wf.Status
	if st.Phase != v1alpha1.WorkflowFailed || !strings.Contains(st.Message, "node a failed: exit 2") {
		t.Fatalf("workflow %s %q, want Failed naming a", st.Phase, st.Message)
	}
	if st.Nodes["down"].Phase != v1alpha1.NodeSkipped || fp.handled["down"] != 0 {
		t.Errorf("down: %s, handled %d; want Skipped, never handled", st.Nodes["down"].Phase, fp.handled["down"])
	}
	if st.Nodes["slow"].Phase != v1alpha1.NodeAborted || fp.aborted["slow"] != 1 {
		t.Errorf("slow: %s, aborted %d; want Aborted once", st.Nodes["slow"].Phase, fp.aborted["slow"])
	}
}

func TestBadOutputsFailWithReason(t *testing.T) {
	for _, tc := range []struct{ name, outputs, want string }{
		{"wrong type", `{"y": "nine"}`, `output "y": want an integer, got string "nine"`},
		{"missing", `{}`, `output "y" is missing`},
		{"undeclared", `{"y": 1, "z": 2}`, `output "z" is not declared (declared: y (integer))`},
		{"not an object", `[1]`, `outputs are not a JSON object`},
		{"nothing written", ``, `the task wrote no outputs`},
		// A termination message is cut at 4 KiB: say what to do instead.
		{"cut short at 4 KiB", `{"y": 1, "pad": "` + strings.Repeat("x", 4096-17), `write large values as files (outputFiles: true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fp, _, wf := setup(t, strings.Replace(chain, "retries: 1", "retries: 0", 1))
			fp.answers["a"] = []plugins.PhaseInfo{ok(tc.outputs)}
			step(t, e, wf)
			if wf.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(wf.Status.Message, tc.want) {
				t.Fatalf("workflow %s %q, want Failed with %q", wf.Status.Phase, wf.Status.Message, tc.want)
			}
			if r := wf.Status.Nodes["a"].Attempts[0].Reason; r != v1alpha1.ReasonBadOutputs {
				t.Errorf("attempt reason %s, want BadOutputs", r)
			}
		})
	}
}

func TestTimeoutAbortsAttempt(t *testing.T) {
	e, fp, clk, wf := setup(t, strings.Replace(chain, "retries: 1", "retries: 0", 1))
	res := step(t, e, wf)
	if res.RequeueAfter != 30*time.Second {
		t.Fatalf("RequeueAfter = %s, want the 30s left of the timeout", res.RequeueAfter)
	}
	clk.Step(31 * time.Second)
	step(t, e, wf)
	a := wf.Status.Nodes["a"].Attempts[0]
	if fp.aborted["a"] != 1 || a.Reason != v1alpha1.ReasonTimedOut || wf.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("aborted %d, attempt %+v, workflow %s; want one abort, TimedOut, Failed", fp.aborted["a"], a, wf.Status.Phase)
	}
}

func TestParallelismCapsRunningNodes(t *testing.T) {
	src := "tasks: {t: {container: {image: x, command: [sh]}}}\nparallelism: 2\nnodes:\n"
	for i := 0; i < 5; i++ {
		src += fmt.Sprintf("- {name: n%d, task: t}\n", i)
	}
	e, fp, _, wf := setup(t, src)
	step(t, e, wf)
	step(t, e, wf)
	if len(fp.handled) != 2 {
		t.Fatalf("%d nodes launched, want 2 (parallelism)", len(fp.handled))
	}
	fp.answers["n0"] = []plugins.PhaseInfo{ok("")}
	step(t, e, wf)
	if len(fp.handled) != 3 {
		t.Fatalf("%d nodes launched after one finished, want 3", len(fp.handled))
	}
}

// TestRetryAccounting checks, over random failure sequences, that user
// failures never exceed retries+1 attempts' worth, that system failures do
// not spend user retries, and that the node fails exactly when a budget is
// exhausted.
func TestRetryAccounting(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for iter := 0; iter < 300; iter++ {
		retries := rng.Intn(4)
		e, fp, _, wf := setup(t, fmt.Sprintf("tasks: {t: {retries: %d, container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t}]", retries))
		var script []plugins.PhaseInfo
		user, sys := 0, 0
		for len(script) < 12 {
			if rng.Intn(3) == 0 {
				script = append(script, plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: "PodDeleted"})
			} else {
				script = append(script, fail(1, "x"))
			}
		}
		script = append(script, ok(""))
		fp.answers["a"] = script
		for i := 0; i < 40 && !wf.Status.Phase.IsTerminal(); i++ {
			step(t, e, wf)
		}
		for _, a := range wf.Status.Nodes["a"].Attempts {
			if a.Phase == v1alpha1.NodeFailed && a.System {
				sys++
			} else if a.Phase == v1alpha1.NodeFailed {
				user++
			}
		}
		if user > retries+1 || sys > e.MaxSystemRetries+1 {
			t.Fatalf("iteration %d: %d user and %d system failures with retries=%d", iter, user, sys, retries)
		}
		exhausted := user == retries+1 || sys == e.MaxSystemRetries+1
		if (wf.Status.Phase == v1alpha1.WorkflowFailed) != exhausted {
			t.Fatalf("iteration %d: phase %s with %d user / %d system failures (retries %d)", iter, wf.Status.Phase, user, sys, retries)
		}
	}
}

func TestInvalidSpecFailsWithoutLaunching(t *testing.T) {
	e, fp, _, wf := setup(t, "tasks: {t: {container: {image: x}}}\nnodes: [{name: a, task: nope}]")
	step(t, e, wf)
	if wf.Status.Phase != v1alpha1.WorkflowFailed || wf.Status.Reason != v1alpha1.ReasonInvalidSpec {
		t.Fatalf("workflow %s/%s, want Failed/InvalidSpec", wf.Status.Phase, wf.Status.Reason)
	}
	if !strings.Contains(wf.Status.Message, "spec.nodes[0].task") || len(fp.handled) != 0 {
		t.Fatalf("message %q, handled %v", wf.Status.Message, fp.handled)
	}
}

// TestPermanentPluginErrorEndsTheAttempt: a plugin error marked permanent
// (the target refuses the pod for good) ends the attempt as a user
// failure with its reason and message on the node; retries run, and the
// round itself succeeds (it is not retried for ever). A plain error still
// fails the round.
func TestPermanentPluginErrorEndsTheAttempt(t *testing.T) {
	e, fp, _, wf := setup(t, "tasks: {t: {retries: 1, container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t}]")
	fp.errs = map[string]error{"a": plugins.Permanent("PodRejected", fmt.Errorf("create pod: violates PodSecurity"))}
	for i := 0; i < 10 && !wf.Status.Phase.IsTerminal(); i++ {
		step(t, e, wf)
	}
	if wf.Status.Phase != v1alpha1.WorkflowFailed {
		t.Fatalf("workflow %s, want Failed", wf.Status.Phase)
	}
	n := wf.Status.Nodes["a"]
	if n.Reason != "PodRejected" || !strings.Contains(n.Message, "violates PodSecurity") {
		t.Fatalf("node reason %q message %q, want PodRejected with the refusal", n.Reason, n.Message)
	}
	if len(n.Attempts) != 2 {
		t.Fatalf("%d attempts, want 2 (retries: 1)", len(n.Attempts))
	}
	for _, a := range n.Attempts {
		if a.Phase != v1alpha1.NodeFailed || a.System {
			t.Fatalf("attempt %d: phase %s system %v, want a user failure", a.Number, a.Phase, a.System)
		}
	}
	if fp.handled["a"] != 2 {
		t.Fatalf("Handle called %d times, want 2 (once per attempt)", fp.handled["a"])
	}

	e, fp, _, wf = setup(t, "tasks: {t: {container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t}]")
	fp.errs = map[string]error{"a": fmt.Errorf("connection refused")}
	if _, err := e.Reconcile(context.Background(), wf); err == nil {
		t.Fatal("a transient plugin error did not fail the round")
	}
	if a, ok := wf.Status.Nodes["a"]; ok && a.Phase.IsTerminal() {
		t.Fatalf("a transient error ended node a: %s", a.Phase)
	}
}

// TestNoPluginCallAfterTheLeaseDeadline: a replica whose lease has
// passed its deadline (frozen, or cut off from etcd) neither launches
// nor aborts anything: the new owner of the workflow does, once.
func TestNoPluginCallAfterTheLeaseDeadline(t *testing.T) {
	e, fp, clk, wf := setup(t, strings.Replace(chain, "retries: 1", "retries: 0", 1))
	held := true
	e.Lease = func() bool { return held }
	step(t, e, wf)
	if fp.handled["a"] != 1 {
		t.Fatalf("with the lease held Handle ran %d times for a, want 1", fp.handled["a"])
	}
	held = false
	before := wf.Status.DeepCopy()
	if _, err := e.Reconcile(context.Background(), wf); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("round after the lease deadline: err %v, want ErrLeaseLost", err)
	}
	if fp.handled["a"] != 1 {
		t.Fatalf("Handle ran %d times for a, want still 1: nothing is called after the lease deadline", fp.handled["a"])
	}
	// A timeout due then is not acted on either: aborting would delete
	// a pod the new owner may be tracking.
	clk.Step(31 * time.Second)
	wf.Status = *before.DeepCopy()
	if _, err := e.Reconcile(context.Background(), wf); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("timed-out round after the lease deadline: err %v, want ErrLeaseLost", err)
	}
	if fp.aborted["a"] != 0 {
		t.Fatalf("Abort ran %d times after the lease deadline, want 0", fp.aborted["a"])
	}
	held = true
	step(t, e, wf)
	if fp.aborted["a"] != 1 || wf.Status.Nodes["a"].Attempts[0].Reason != v1alpha1.ReasonTimedOut {
		t.Fatalf("lease held again: aborted %d, attempt %+v; want the timeout acted on once", fp.aborted["a"], wf.Status.Nodes["a"].Attempts[0])
	}
}
