package sharding

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

const gatedWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: gated}
spec:
  tasks:
    t: {container: {image: busybox}}
  nodes:
  - {name: a, task: t}
  - {name: gate, gate: {approve: {}}, dependsOn: [a]}
`

func parse[T any](t *testing.T, yaml string, obj *T) *T {
	t.Helper()
	if err := manifest.Unmarshal([]byte(yaml), obj); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return obj
}

// TestAdmissionWebhook: with the managers' webhook registered, the control
// apiserver refuses an invalid Workflow or WorkflowTemplate at create with
// `rotor validate`'s message, a change to a Workflow's spec, and an object
// over the size limit; an abort still goes through. With the webhook's
// manager gone (failurePolicy Ignore) the same cyclic workflow gets in,
// and the engine fails it with reason InvalidSpec naming the cycle.
func TestAdmissionWebhook(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1, Sharded: true, Managers: 2})
	ctx := context.Background()
	const ns = "adm"
	if err := env.CreateNamespaces(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.RegisterWebhook(ctx, env.ManagerWebhook[0]); err != nil {
		t.Fatal(err)
	}
	api := env.Rotor.RotorV1alpha1().Workflows(ns)
	cyclic := func(name string) *v1alpha1.Workflow {
		return parse(t, harness.CyclicWorkflow(name), &v1alpha1.Workflow{})
	}
	// The apiserver picks a new webhook configuration up from its own
	// informer: dry-run creates (no side effects) until one is refused.
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for {
		_, err = api.Create(ctx, cyclic("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil {
		t.Fatalf("after 30 s a dry-run create of a cyclic workflow is still admitted: the apiserver never called the webhook")
	}

	_, err = api.Create(ctx, cyclic("loop"), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `invalid workflow:`) ||
		!strings.Contains(err.Error(), "a -> b -> a") || !strings.Contains(err.Error(), "the nodes form a cycle") {
		t.Fatalf("create of a cyclic workflow: %v; want 422 Invalid naming the cycle a -> b -> a", err)
	}
	if _, err := api.Get(ctx, "loop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused workflow exists: get = %v", err)
	}

	tpl := parse(t, "apiVersion: rotor.dev/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: tpl}\nspec:\n  nodes:\n  - {name: a, task: missing}\n", &v1alpha1.WorkflowTemplate{})
	if _, err := env.Rotor.RotorV1alpha1().WorkflowTemplates(ns).Create(ctx, tpl, metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), `spec.nodes[0].task: Not found: "missing`) {
		t.Fatalf("create of a template naming a missing task: %v; want 422 naming spec.nodes[0].task", err)
	}

	big := cyclic("big")
	big.Spec.Nodes = big.Spec.Nodes[:1]
	big.Spec.Nodes[0].DependsOn = nil
	task := big.Spec.Tasks["t"]
	task.Container.Command = []string{"sh", "-c", strings.Repeat("x", 1100<<10)}
	big.Spec.Tasks["t"] = task
	if _, err := api.Create(ctx, big, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "the limit is 1048576") {
		t.Fatalf("create of a 1.1 MiB workflow: %v; want a refusal naming the limit 1048576", err)
	}

	wf, err := api.Create(ctx, parse(t, gatedWorkflow, &v1alpha1.Workflow{}), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create of a valid workflow: %v", err)
	}
	_, err = api.Patch(ctx, wf.Name, types.MergePatchType, []byte(`{"spec":{"nodes":[{"name":"a","task":"t"}]}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "the spec is immutable once created") {
		t.Fatalf("a patch of spec.nodes: %v; want 422 saying the spec is immutable", err)
	}
	if _, err := api.Patch(ctx, wf.Name, types.MergePatchType, []byte(`{"spec":{"abort":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("abort: %v; want it admitted", err)
	}
	if got := env.WaitWorkflow(t, wf, 60*time.Second, harness.Ended); got.Status.Phase != v1alpha1.WorkflowAborted {
		t.Fatalf("the aborted workflow ended %s (%s), want Aborted", got.Status.Phase, got.Status.Message)
	}

	// The webhook's manager gone: the create is admitted (Ignore) and the
	// engine's own validation ends it.
	process(t, env, "rotor-manager-0").Stop(5 * time.Second)
	in, err := api.Create(ctx, cyclic("slipped-in"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("with the webhook down, create of a cyclic workflow: %v; want it admitted (failurePolicy Ignore)", err)
	}
	got := env.WaitWorkflow(t, in, 60*time.Second, harness.Ended)
	if got.Status.Phase != v1alpha1.WorkflowFailed || got.Status.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(got.Status.Message, "the nodes form a cycle") {
		t.Fatalf("the workflow that got in ended %s %s %q; want Failed InvalidSpec naming the cycle", got.Status.Phase, got.Status.Reason, got.Status.Message)
	}
}
