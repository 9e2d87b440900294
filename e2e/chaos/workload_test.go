package chaos

import (
	"reflect"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/controller/manifest"
)

func TestFibFrom(t *testing.T) {
	for _, c := range []struct{ a, b, n, want int }{{1, 1, 0, 1}, {1, 1, 1, 1}, {1, 1, 6, 13}, {2, 5, 3, 12}} {
		if got := FibFrom(c.a, c.b, c.n); got != c.want {
			t.Errorf("FibFrom(%d, %d, %d) = %d, want %d", c.a, c.b, c.n, got, c.want)
		}
	}
}

// TestWorkloadSpecsAreValid: every kind of workflow the soak submits
// decodes and passes the engine's validation, so a lost workflow in a run
// is never the workload's own mistake.
func TestWorkloadSpecsAreValid(t *testing.T) {
	w := NewWorkload(1, "http://127.0.0.1:1")
	kinds := map[string]int{}
	for i := 0; i < 200; i++ {
		spec, exp := w.Next([]string{"ns-a", "ns-b"})
		wf := &v1alpha1.Workflow{}
		if err := manifest.Unmarshal([]byte(spec), wf); err != nil {
			t.Fatalf("%s: %v\n%s", exp.Kind, err, spec)
		}
		if _, errs := dag.Build(&wf.Spec); len(errs) > 0 {
			t.Fatalf("%s: %v\n%s", exp.Kind, errs.ToAggregate(), spec)
		}
		if wf.Name != exp.Name || wf.Namespace != exp.Namespace {
			t.Fatalf("spec names %s/%s, expectation %s", wf.Namespace, wf.Name, exp.Key())
		}
		if exp.Phase == v1alpha1.WorkflowSucceeded && len(exp.Outputs) == 0 {
			t.Fatalf("%s: a workflow expected to succeed with no outputs to check", exp.Kind)
		}
		kinds[exp.Kind]++
	}
	for _, k := range []string{"fib", "map", "sub", "cached", "fail"} {
		if kinds[k] == 0 {
			t.Errorf("200 workflows held no %s", k)
		}
	}
}

func TestWorkloadIsDeterministic(t *testing.T) {
	a, b := NewWorkload(5, "http://x"), NewWorkload(5, "http://x")
	for i := 0; i < 20; i++ {
		sa, ea := a.Next([]string{"n1", "n2", "n3"})
		sb, eb := b.Next([]string{"n1", "n2", "n3"})
		if sa != sb || !reflect.DeepEqual(ea, eb) {
			t.Fatalf("workflow %d differs for one seed", i)
		}
	}
}
