// Package kwok tests Rotor on the kwok node runtime, where task pods are
// simulated from their sim.rotor.dev/* annotations.
package kwok

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

const simWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: sim}
spec:
  tasks:
    produce:
      outputs: {y: integer, s: string}
      metadata:
        annotations:
          sim.rotor.dev/duration: 1500ms
          sim.rotor.dev/outputs: '{"y": 7, "s": "seven"}'
      container: {image: busybox}
    consume:
      inputs: {x: integer}
      outputs: {}
      container: {image: busybox}
    crash:
      metadata:
        annotations:
          sim.rotor.dev/exit-code: "42"
          sim.rotor.dev/outputs: simulated crash
      container: {image: busybox}
  nodes:
  - {name: p, task: produce}
  - {name: c, task: consume, inputs: {x: "{{nodes.p.outputs.y}}"}}
  outputs:
    y: "{{nodes.p.outputs.y}}"
    s: "{{nodes.p.outputs.s}}"
`

func run(t *testing.T, env *harness.Env, ns, src string) *v1alpha1.Workflow {
	t.Helper()
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(src), wf); err != nil {
		t.Fatal(err)
	}
	wf.Namespace = ns
	ctx := context.Background()
	if _, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env.WaitWorkflow(t, wf, 60*time.Second, harness.Ended)
}

// env is shared by this package's tests: a control cluster, one kwok
// target and one propeller; each test uses its own namespace.
var env *harness.Env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotor-e2e-kwok-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env, err = harness.Start(context.Background(), dir, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start kwok environment (logs in %s): %v\n", dir, err)
		os.Exit(1)
	}
	fmt.Printf("kwok environment ready in %s\n", env.Started.Round(time.Millisecond))
	code := m.Run()
	env.Stop()
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Printf("e2e failed: component logs kept in %s\n", dir)
	}
	os.Exit(code)
}

func TestKwokRuntime(t *testing.T) {
	ctx := context.Background()
	if err := env.CreateNamespaces(ctx, "sim"); err != nil {
		t.Fatal(err)
	}

	t.Run("outputs and duration from annotations", func(t *testing.T) {
		wf := run(t, env, "sim", simWorkflow)
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("phase = %s (%s), want Succeeded", wf.Status.Phase, wf.Status.Message)
		}
		if y, s := string(wf.Status.Outputs["y"].Raw), string(wf.Status.Outputs["s"].Raw); y != "7" || s != `"seven"` {
			t.Fatalf("outputs y=%s s=%s, want 7 and \"seven\"", y, s)
		}
		pod, err := env.Targets[0].CoreV1().Pods("sim").Get(ctx, wf.Status.Nodes["p"].Attempts[0].Pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		term := pod.Status.ContainerStatuses[0].State.Terminated
		if ran := term.FinishedAt.Sub(pod.Status.StartTime.Time); ran < time.Second {
			t.Fatalf("pod ran %s, want about the 1.5s its annotation asks for", ran)
		}
	})

	t.Run("exit code and message from annotations", func(t *testing.T) {
		src := strings.Replace(simWorkflow, "name: sim}", "name: sim-crash}", 1)
		src = strings.Replace(src, "{name: c, task: consume", "{name: x, task: crash}\n  - {name: c, task: consume", 1)
		wf := run(t, env, "sim", src)
		if wf.Status.Phase != v1alpha1.WorkflowFailed {
			t.Fatalf("phase = %s, want Failed", wf.Status.Phase)
		}
		for _, want := range []string{"node x failed", "code 42", "simulated crash"} {
			if !strings.Contains(wf.Status.Message, want) {
				t.Errorf("message %q does not contain %q", wf.Status.Message, want)
			}
		}
	})
}

const fiftyItems = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: fifty}
spec:
  inputs: {xs: {type: array, value: [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49]}}
  tasks:
    work:
      inputs: {x: integer}
      outputs: {ok: boolean}
      metadata: {annotations: {sim.rotor.dev/duration: 300ms, sim.rotor.dev/outputs: '{"ok": true}'}}
      container: {image: busybox}
  nodes:
  - {name: m, map: {task: work, over: "{{workflow.inputs.xs}}", item: x, concurrency: CONCURRENCY}}
  outputs: {oks: "{{nodes.m.outputs.ok}}"}
`

// TestMapConcurrencyFromTheAPIServer runs a map over 50 items with
// concurrency 5, each pod lasting 300ms, sampling the target's pods while
// it runs: never more than 5 may be active at once.
func TestMapConcurrencyFromTheAPIServer(t *testing.T) {
	if err := env.CreateNamespaces(context.Background(), "maps"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	most := env.SampleActivePods("maps", stop)
	wf := run(t, env, "maps", strings.Replace(fiftyItems, "CONCURRENCY", "5", 1))
	close(stop)
	sample := most()
	sample.Check(t, 20)
	maxActive := sample.Most[env.Env.Targets[0].Name]
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("map: %s (%s)", wf.Status.Phase, wf.Status.Message)
	}
	t.Logf("50 items, concurrency 5: at most %d active pods, %s", maxActive, wf.Status.FinishedAt.Sub(wf.Status.StartedAt.Time))
	if maxActive > 5 || maxActive < 4 {
		t.Fatalf("at most %d pods were active at once, want 5 (concurrency)", maxActive)
	}
}

// TestNamespaceCap: with the namespace capped at 3 running task pods, an
// uncapped map over 50 items never has more than 3 active.
func TestNamespaceCap(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "capped", Annotations: map[string]string{cluster.AnnotationMaxRunningPods: "3"}}}
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the replica's namespace cache
	stop := make(chan struct{})
	most := env.SampleActivePods("capped", stop)
	wf := run(t, env, "capped", strings.Replace(fiftyItems, "CONCURRENCY", "0", 1))
	close(stop)
	sample := most()
	sample.Check(t, 20)
	maxActive := sample.Most[env.Env.Targets[0].Name]
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("map: %s (%s)", wf.Status.Phase, wf.Status.Message)
	}
	t.Logf("50 items, namespace cap 3: at most %d active pods, %s", maxActive, wf.Status.FinishedAt.Sub(wf.Status.StartedAt.Time))
	if maxActive > 3 || maxActive < 2 {
		t.Fatalf("at most %d pods were active at once, want 3 (the namespace cap)", maxActive)
	}
}

// TestFiveThousandNodes runs a 5,000-node workflow (50 chains of 100
// zero-duration tasks, each reading its predecessor's output) to the end
// and reports the size of the Workflow object, which must stay far under
// etcd's 1.5 MiB limit.
func TestFiveThousandNodes(t *testing.T) {
	ctx := context.Background()
	if err := env.CreateNamespaces(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: big}
spec:
  tasks:
    step:
      inputs: {i: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/outputs: '{"v": 1}'}}
      container: {image: busybox}
  nodes:
`)
	for c := 0; c < 50; c++ {
		fmt.Fprintf(&b, "  - {name: c%d-0, task: step, inputs: {i: 0}}\n", c)
		for i := 1; i < 100; i++ {
			fmt.Fprintf(&b, "  - {name: c%d-%d, task: step, inputs: {i: \"{{nodes.c%d-%d.outputs.v}}\"}}\n", c, i, c, i-1)
		}
	}
	start := time.Now()
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(b.String()), wf); err != nil {
		t.Fatal(err)
	}
	wf.Namespace = "big"
	if _, err := env.Rotor.RotorV1alpha1().Workflows("big").Create(ctx, wf, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *v1alpha1.Workflow
	largest := 0
	err := wait.PollUntilContextTimeout(ctx, time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		w, err := env.Rotor.RotorV1alpha1().Workflows("big").Get(ctx, "big", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		raw, _ := json.Marshal(w)
		if len(raw) > largest && os.Getenv("ROTOR_DUMP_LARGEST") != "" {
			_ = os.WriteFile(os.Getenv("ROTOR_DUMP_LARGEST"), raw, 0o644)
		}
		largest = max(largest, len(raw))
		got = w
		return w.Status.Phase.IsTerminal(), nil
	})
	if err != nil {
		if got == nil {
			t.Fatalf("5,000-node workflow: every Get failed for 10m: %v", err)
		}
		all, _ := got.Status.AllNodes()
		t.Fatalf("5,000-node workflow not done after 10m: %d of %d nodes have a status", len(all), 5000)
	}
	raw, _ := json.Marshal(got)
	t.Logf("5,000 nodes %s in %s; Workflow object %d bytes at the end, %d at most while running (etcd limit 1,572,864)",
		got.Status.Phase, time.Since(start).Round(time.Second), len(raw), largest)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
	}
	if all, _ := got.Status.AllNodes(); len(all) != 5000 {
		t.Fatalf("%d nodes have a status, want 5,000", len(all))
	}
	if largest > 1<<20 {
		t.Fatalf("the Workflow reached %d bytes: not far enough under etcd's 1.5 MiB", largest)
	}
}
