package sharding

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

const shardTemplate = `apiVersion: rotor.dev/v1alpha1
kind: WorkflowTemplate
metadata: {name: double}
spec:
  inputs: {x: {type: integer}}
  tasks:
    step:
      inputs: {x: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/outputs: '{"v": 2}'}}
      container: {image: busybox}
  nodes:
  - {name: s, task: step, inputs: {x: "{{workflow.inputs.x}}"}}
  outputs: {v: "{{nodes.s.outputs.v}}"}
`

const byReference = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  nodes:
  - {name: sub, inputs: {x: 1}, workflow: {templateRef: double}}
  outputs: {v: "{{nodes.sub.outputs.v}}"}
`

// TestTemplatesOfTheShard: each replica caches the WorkflowTemplates of
// its own namespaces only. A workflow referencing a template of its
// namespace succeeds on whichever replica owns it, in namespaces spread
// over all three; one referencing a template that exists only in another
// namespace fails saying the template is not found.
func TestTemplatesOfTheShard(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2})
	doc := waitStableMap(t, env, 3)
	ctx := context.Background()
	owners := map[string]bool{}
	var wfs []*v1alpha1.Workflow
	for n := 0; n < 12; n++ {
		ns := fmt.Sprintf("tpl-%02d", n)
		if err := env.CreateNamespaces(ctx, ns); err != nil {
			t.Fatal(err)
		}
		owners[doc.Map[shardproto.PartitionOf(ns, doc.Partitions)].Owner] = true
		tpl := &v1alpha1.WorkflowTemplate{}
		if err := manifest.Unmarshal([]byte(shardTemplate), tpl); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Rotor.RotorV1alpha1().WorkflowTemplates(ns).Create(ctx, tpl, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(owners) != 3 {
		t.Fatalf("12 namespaces landed on %d replicas, want all 3: the test would not cover every replica", len(owners))
	}
	if err := env.CreateNamespaces(ctx, "tpl-none"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // replicas pick up the new namespaces
	submit := func(ns, name string) *v1alpha1.Workflow {
		wf := &v1alpha1.Workflow{}
		if err := manifest.Unmarshal([]byte(strings.Replace(byReference, "NAME", name, 1)), wf); err != nil {
			t.Fatal(err)
		}
		got, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for n := 0; n < 12; n++ {
		wfs = append(wfs, submit(fmt.Sprintf("tpl-%02d", n), "ref"))
	}
	missing := submit("tpl-none", "ref")
	for _, wf := range wfs {
		got := env.WaitWorkflow(t, wf, 90*time.Second, harness.Ended)
		if got.Status.Phase != v1alpha1.WorkflowSucceeded || string(got.Status.Outputs["v"].Raw) != "2" {
			t.Errorf("%s/%s: %s (%s), outputs %v; want Succeeded with v = 2", got.Namespace, got.Name, got.Status.Phase, got.Status.Message, got.Status.Outputs)
		}
	}
	got := env.WaitWorkflow(t, missing, 90*time.Second, harness.Ended)
	if got.Status.Phase != v1alpha1.WorkflowFailed || !strings.Contains(got.Status.Message+got.Status.Nodes["sub"].Message, "not found") {
		t.Errorf("templateRef to a template of another namespace: %s (%s / %s), want Failed saying not found",
			got.Status.Phase, got.Status.Message, got.Status.Nodes["sub"].Message)
	}
}
