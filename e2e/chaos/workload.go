package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// Expectation is the outcome a submitted workflow must end with.
type Expectation struct {
	Namespace, Name string
	Kind            string
	Phase           v1alpha1.WorkflowPhase
	// Outputs are the workflow outputs as JSON (compared canonically).
	Outputs map[string]string
	// UserFailures are the attempts, by node path, that must have failed
	// by the task's own fault (not System); every other node none.
	UserFailures map[string]int
}

// Key is namespace/name.
func (e Expectation) Key() string { return e.Namespace + "/" + e.Name }

// Workload draws the workflows of a soak. Under kwok a task's outputs are
// its sim.rotor.dev/outputs annotation, fixed by the spec; the values that
// depend on inputs come from http tasks (the soak's server adds the two
// numbers it is sent), so a wrong or lost binding shows in the result.
type Workload struct {
	r *rand.Rand
	// Base is the http server's URL (http://127.0.0.1:PORT).
	Base string
	seq  int
}

// NewWorkload returns the workload of seed.
func NewWorkload(seed int64, base string) *Workload {
	return &Workload{r: rand.New(rand.NewPCG(uint64(seed), 0x10ad)), Base: base}
}

// Next returns the next workflow (YAML, name and namespace filled) and
// what it must end with. Namespaces are ns[0..len-1].
func (w *Workload) Next(ns []string) (string, Expectation) {
	w.seq++
	kinds := []func(string) (string, Expectation){w.fib, w.mapped, w.sub, w.cached, w.failing}
	// Chains (the checkable computation) are drawn twice as often.
	weights := []int{4, 2, 2, 2, 1}
	k := pick(w.r, weights)
	name := fmt.Sprintf("wf-%05d", w.seq)
	spec, exp := kinds[k](name)
	exp.Namespace, exp.Name = ns[w.r.IntN(len(ns))], name
	return strings.Replace(spec, "NAMESPACE", exp.Namespace, 1), exp
}

func pick(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

func (w *Workload) duration() string { return fmt.Sprintf("%dms", 200+w.r.IntN(1300)) }

const header = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: %s, namespace: NAMESPACE}
spec:
`

// addTask is the http task that adds a and b on the soak's server.
func (w *Workload) addTask() string {
	return `    add:
      type: http
      inputs: {a: integer, b: integer}
      outputs: {v: integer}
      http: {url: "` + w.Base + `/add"}
`
}

// constTask is a kwok task whose output v is fixed by its spec.
func (w *Workload) constTask(name string, v int) string {
	return fmt.Sprintf(`    %s:
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/duration: %s, sim.rotor.dev/outputs: '{"v": %d}'}}
      container: {image: busybox}
`, name, w.duration(), v)
}

// FibFrom is the n-th term of the Fibonacci-like sequence that starts a, b
// (term 0 is a).
func FibFrom(a, b, n int) int {
	for ; n > 0; n-- {
		a, b = b, a+b
	}
	return a
}

// fib: two kwok seeds, then http additions f[i] = f[i-2] + f[i-1].
func (w *Workload) fib(name string) (string, Expectation) {
	a, b, n := 1+w.r.IntN(9), 1+w.r.IntN(9), 3+w.r.IntN(5)
	var s strings.Builder
	fmt.Fprintf(&s, header, name)
	s.WriteString("  tasks:\n" + w.constTask("seed-a", a) + w.constTask("seed-b", b) + w.addTask())
	s.WriteString("  nodes:\n  - {name: f0, task: seed-a}\n  - {name: f1, task: seed-b}\n")
	for i := 2; i <= n; i++ {
		fmt.Fprintf(&s, "  - {name: f%d, task: add, inputs: {a: \"{{nodes.f%d.outputs.v}}\", b: \"{{nodes.f%d.outputs.v}}\"}}\n", i, i-2, i-1)
	}
	fmt.Fprintf(&s, "  outputs: {fib: \"{{nodes.f%d.outputs.v}}\"}\n", n)
	return s.String(), Expectation{Kind: "fib", Phase: v1alpha1.WorkflowSucceeded,
		Outputs: map[string]string{"fib": fmt.Sprint(FibFrom(a, b, n))}}
}

// mapped: a map over k items, at most two at a time; its output is the
// gathered list.
func (w *Workload) mapped(name string) (string, Expectation) {
	k, c := 2+w.r.IntN(4), w.r.IntN(100)
	items, vs := make([]int, k), make([]int, k)
	for i := range items {
		items[i], vs[i] = i, c
	}
	xs, _ := json.Marshal(items)
	want, _ := json.Marshal(vs)
	spec := fmt.Sprintf(header, name) + fmt.Sprintf(`  inputs: {xs: {type: array, value: %s}}
  tasks:
    item:
      inputs: {x: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/duration: %s, sim.rotor.dev/outputs: '{"v": %d}'}}
      container: {image: busybox}
  nodes:
  - name: m
    map: {task: item, over: "{{workflow.inputs.xs}}", item: x, concurrency: 2}
  outputs: {vs: "{{nodes.m.outputs.v}}"}
`, xs, w.duration(), c)
	return spec, Expectation{Kind: "map", Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"vs": string(want)}}
}

// sub: a kwok constant doubled by an http task inside an inline
// sub-workflow, followed there by a kwok step.
func (w *Workload) sub(name string) (string, Expectation) {
	c := 1 + w.r.IntN(50)
	spec := fmt.Sprintf(header, name) + "  tasks:\n" + w.constTask("const", c) + w.constTask("tail", 0) + w.addTask() + `  nodes:
  - {name: a, task: const}
  - name: double
    inputs: {v: "{{nodes.a.outputs.v}}"}
    workflow:
      spec:
        inputs: {v: {type: integer}}
        nodes:
        - {name: x, task: add, inputs: {a: "{{workflow.inputs.v}}", b: "{{workflow.inputs.v}}"}}
        - {name: y, task: tail, dependsOn: [x]}
        outputs: {out: "{{nodes.x.outputs.v}}"}
  outputs: {result: "{{nodes.double.outputs.out}}"}
`
	return spec, Expectation{Kind: "sub", Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"result": fmt.Sprint(2 * c)}}
}

// CachedOutput is the output of the cached task. The cache key leaves out
// a task's metadata (its kwok outputs), so every workflow must give the
// same one or a cache hit would return another workflow's value.
const CachedOutput = 42

// cached: one cached, serialized task on one of three inputs, so that
// workflows of a namespace hit each other's entries.
func (w *Workload) cached(name string) (string, Expectation) {
	spec := fmt.Sprintf(header, name) + fmt.Sprintf(`  inputs: {n: {type: integer, value: %d}}
  tasks:
    square:
      inputs: {x: integer}
      outputs: {y: integer}
      cache: {version: v1, serialize: true}
      metadata: {annotations: {sim.rotor.dev/duration: %s, sim.rotor.dev/outputs: '{"y": %d}'}}
      container: {image: busybox, command: [sh, -c, 'echo {{inputs.x}}']}
  nodes: [{name: a, task: square, inputs: {x: "{{workflow.inputs.n}}"}}]
  outputs: {y: "{{nodes.a.outputs.y}}"}
`, 1+w.r.IntN(3), w.duration(), CachedOutput)
	return spec, Expectation{Kind: "cached", Phase: v1alpha1.WorkflowSucceeded, Outputs: map[string]string{"y": fmt.Sprint(CachedOutput)}}
}

// failing: a task that exits 1 on both of its attempts; the workflow must
// end Failed, and the step after it must never run.
func (w *Workload) failing(name string) (string, Expectation) {
	spec := fmt.Sprintf(header, name) + fmt.Sprintf(`  tasks:
    boom:
      retries: 1
      backoff: {initial: 200ms, max: 1s, factor: 2}
      metadata: {annotations: {sim.rotor.dev/duration: %s, sim.rotor.dev/exit-code: "1"}}
      container: {image: busybox}
    after:
      metadata: {annotations: {sim.rotor.dev/duration: 100ms}}
      container: {image: busybox}
  nodes:
  - {name: a, task: boom}
  - {name: b, task: after, dependsOn: [a]}
`, w.duration())
	return spec, Expectation{Kind: "fail", Phase: v1alpha1.WorkflowFailed, UserFailures: map[string]int{"a": 2}}
}
