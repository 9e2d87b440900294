package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/data/store"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// AgentCost is the data agent's added time per task: one-task workflows
// on the process runtime, with a small file in and out through the agent
// against the same task without data, alternated, submit → Succeeded
// (seen through a watch).
type AgentCost struct {
	Runs       int     `json:"runs"`
	WithP50ms  float64 `json:"withAgentP50ms"`
	PlainP50ms float64 `json:"plainP50ms"`
	AddedP50ms float64 `json:"addedP50ms"`
}

const agentWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  inputs: {f: {type: file, value: REF}}
  tasks:
    t:
      inputs: {f: file}
      outputs: {g: file}
      container: {image: busybox, command: [sh, -ec, 'cp {{inputs.f}} $ROTOR_OUTPUTS_DIR/g']}
  nodes: [{name: t, task: t, inputs: {f: "{{workflow.inputs.f}}"}}]
`

const plainWorkflow = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    t:
      outputs: {g: string}
      container: {image: busybox, command: [sh, -ec, 'echo "{\"g\": \"x\"}" > $ROTOR_OUTPUT_FILE']}
  nodes: [{name: t, task: t}]
`

// agentCost runs runs workflows of each kind, one at a time.
func agentCost(ctx context.Context, dir string, runs int, res *Result) error {
	env, err := harness.Start(ctx, filepath.Join(dir, "agent"), harness.Options{Targets: 1, Runtime: localcluster.RuntimeProcess, Replicas: 1, DataPlane: true})
	if err != nil {
		return err
	}
	defer env.Stop()
	const ns = "bench-data"
	if err := env.CreateNamespaces(ctx, ns); err != nil {
		return err
	}
	s3 := env.Env.S3
	st, err := store.Open(ctx, store.Config{URL: s3.URL(localcluster.RawDataBucket, "raw"), AccessKeyID: s3.AccessKeyID, SecretAccessKey: s3.SecretAccessKey})
	if err != nil {
		return err
	}
	defer st.Close()
	in, err := st.Put(ctx, ref.Join(st.Root(), ns, "inputs", "f"), strings.NewReader("a small file\n"))
	if err != nil {
		return err
	}
	refJSON := fmt.Sprintf(`{uri: %q, size: %d, sha256: %q}`, in.URI, in.Size, in.SHA256)
	one := func(name, src string) (time.Duration, error) {
		wf := &v1alpha1.Workflow{}
		if err := manifest.Unmarshal([]byte(strings.ReplaceAll(strings.Replace(src, "NAME", name, 1), "REF", refJSON)), wf); err != nil {
			return 0, err
		}
		// Watched, not polled: a GET every few milliseconds costs the
		// 2-core machine CPU the run being measured needs, and more of it
		// the longer the run.
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		w, err := env.Rotor.RotorV1alpha1().Workflows(ns).Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			return 0, err
		}
		defer w.Stop()
		start := time.Now()
		if _, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{}); err != nil {
			return 0, err
		}
		for ev := range w.ResultChan() {
			got, ok := ev.Object.(*v1alpha1.Workflow)
			if !ok || !got.Status.Phase.IsTerminal() {
				continue
			}
			if got.Status.Phase != v1alpha1.WorkflowSucceeded {
				return 0, fmt.Errorf("workflow %s: %s (%s)", name, got.Status.Phase, got.Status.Message)
			}
			return time.Since(start), nil
		}
		return 0, fmt.Errorf("workflow %s did not end within 60s", name)
	}
	var with, plain []float64
	for i := range runs {
		d, err := one(fmt.Sprintf("with-%d", i), agentWorkflow)
		if err != nil {
			return err
		}
		p, err := one(fmt.Sprintf("plain-%d", i), plainWorkflow)
		if err != nil {
			return err
		}
		with, plain = append(with, d.Seconds()*1000), append(plain, p.Seconds()*1000)
	}
	c := AgentCost{Runs: runs, WithP50ms: median(with), PlainP50ms: median(plain)}
	c.AddedP50ms = c.WithP50ms - c.PlainP50ms
	say("data: agent cost over %d runs each: with the agent p50 %.0f ms, without %.0f ms: added %.0f ms", runs, c.WithP50ms, c.PlainP50ms, c.AddedP50ms)
	res.AgentCost = c
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
