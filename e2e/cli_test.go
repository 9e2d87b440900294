package e2e

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/internal/tracing"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestExamples runs every workflow in docs/examples, after registering the
// templates in docs/examples/templates, and expects each to end as its
// examples.rotor.dev/expect annotation says (default Succeeded).
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(env.RepoRoot, "docs", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	templates, _ := filepath.Glob(filepath.Join(env.RepoRoot, "docs", "examples", "templates", "*.yaml"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			if err := env.CreateExampleSecrets(context.Background(), ns); err != nil {
				t.Fatal(err)
			}
			for _, tf := range templates {
				if out, code := rotorCLI(t, "submit", "-n", ns, "-f", tf); code != 0 {
					t.Fatalf("register template %s: %s", tf, out)
				}
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wf := waitDone(t, submit(t, ns, string(src)), 90*time.Second)
			want := v1alpha1.WorkflowPhase(wf.Annotations["examples.rotor.dev/expect"])
			if want == "" {
				want = v1alpha1.WorkflowSucceeded
			}
			if wf.Status.Phase != want {
				t.Fatalf("%s: %s (%s), want %s", f, wf.Status.Phase, wf.Status.Message, want)
			}
			t.Logf("%s: %s, outputs %s", filepath.Base(f), wf.Status.Phase, outputsOf(wf))
		})
	}
}

func outputsOf(wf *v1alpha1.Workflow) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(wf.Status.Outputs)) {
		parts = append(parts, k+"="+string(wf.Status.Outputs[k].Raw))
	}
	return strings.Join(parts, " ")
}

func rotorCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env.RepoRoot, "bin", "rotor"), append([]string{"--kubeconfig", env.Control.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run rotor %v: %v", args, err)
	}
	return string(out), code
}

func TestCLISubmitWait(t *testing.T) {
	ns := namespace(t)
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("success prints outputs and exits 0", func(t *testing.T) {
		src, _ := os.ReadFile(filepath.Join(env.RepoRoot, "docs", "examples", "diamond.yaml"))
		out, code := rotorCLI(t, "submit", "-n", ns, "-f", write("ok.yaml", string(src)), "--wait")
		if code != 0 || !strings.Contains(out, "output result = 81") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		wf, err := env.Rotor.RotorV1alpha1().Workflows(ns).Get(context.Background(), "diamond", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The cluster column shows where node a ran (either target: the
		// placement follows the load earlier tests left).
		placed := ""
		if a := wf.Status.Nodes["a"].Attempts; len(a) > 0 {
			placed = a[0].Cluster
		}
		out, code = rotorCLI(t, "get", "diamond", "-n", ns)
		if code != 0 || !strings.Contains(out, "Phase:     Succeeded") || placed == "" || !strings.Contains(out, placed) {
			t.Fatalf("rotor get: exit %d, node a placed on %q, output:\n%s", code, placed, out)
		}
		if tid, _ := tracing.IDs(wf.UID); !strings.Contains(out, "Trace:     "+tid.String()) {
			t.Errorf("rotor get does not show the execution's trace ID %s:\n%s", tid, out)
		}
	})
	t.Run("failure exits non-zero and names the node", func(t *testing.T) {
		p := write("bad.yaml", `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: broken}
spec:
  tasks: {t: {container: {image: x, command: [sh, -c, "exit 5"]}}}
  nodes: [{name: only, task: t}]
`)
		out, code := rotorCLI(t, "submit", "-n", ns, "-f", p, "--wait")
		if code == 0 || !strings.Contains(out, "Failed") || !strings.Contains(out, "node only failed: container exited with code 5") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	t.Run("invalid file is rejected before anything is created", func(t *testing.T) {
		p := write("invalid.yaml", `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: never}
spec:
  tasks: {t: {inputs: {x: integer}, container: {image: x, command: ["true"]}}}
  nodes: [{name: a, task: t, inputs: {x: "{{workflow.inputs.missing}}"}}]
`)
		out, code := rotorCLI(t, "submit", "-n", ns, "-f", p)
		if code == 0 || !strings.Contains(out, `spec.nodes[0].inputs[x]`) || !strings.Contains(out, `no workflow input "missing"`) {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		if _, code := rotorCLI(t, "get", "never", "-n", ns); code == 0 {
			t.Fatal("an invalid workflow was created")
		}
	})
}
