package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
)

const labelRun = "bench.rotor.dev/run"

// chain is a workflow of n tasks in a row, each running for d on kwok
// (0: done as soon as it starts).
func chain(name, ns, run string, n int, d time.Duration) *v1alpha1.Workflow {
	task := v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}}
	if d > 0 {
		task.Metadata = &v1alpha1.TaskMetadata{Annotations: map[string]string{"sim.rotor.dev/duration": d.String()}}
	}
	wf := &v1alpha1.Workflow{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{labelRun: run}},
		Spec:       v1alpha1.WorkflowSpec{Tasks: map[string]v1alpha1.TaskTemplate{"t": task}},
	}
	for i := 0; i < n; i++ {
		node := v1alpha1.Node{Name: fmt.Sprintf("s%d", i), Task: "t"}
		if i > 0 {
			node.DependsOn = []string{fmt.Sprintf("s%d", i-1)}
		}
		wf.Spec.Nodes = append(wf.Spec.Nodes, node)
	}
	return wf
}

// namespaces names n tenant namespaces for a run and creates them.
func namespaces(ctx context.Context, env *harness.Env, run string, n int) ([]string, error) {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s-%03d", run, i))
	}
	return out, env.CreateNamespaces(ctx, out...)
}

// createAll creates the workflows with 16 clients in parallel, retrying
// what the apiserver refuses for load.
func createAll(ctx context.Context, env *harness.Env, wfs []*v1alpha1.Workflow) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var first error
	for _, wf := range wfs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for attempt := 0; ; attempt++ {
				_, err := env.Rotor.RotorV1alpha1().Workflows(wf.Namespace).Create(ctx, wf, metav1.CreateOptions{})
				if err == nil || apierrors.IsAlreadyExists(err) {
					return
				}
				if attempt == 50 {
					mu.Lock()
					first = fmt.Errorf("create %s/%s: %w", wf.Namespace, wf.Name, err)
					mu.Unlock()
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return first
}

// spread builds count workflows over the namespaces, round robin.
func spread(run string, nss []string, count, tasks int, d time.Duration) []*v1alpha1.Workflow {
	var wfs []*v1alpha1.Workflow
	for i := 0; i < count; i++ {
		ns := nss[i%len(nss)]
		// The run in the name: runs may share namespaces.
		wfs = append(wfs, chain(fmt.Sprintf("%s-%05d", run, i), ns, run, tasks, d))
	}
	return wfs
}

func runName(parts ...any) string {
	var s []string
	for _, p := range parts {
		s = append(s, fmt.Sprint(p))
	}
	return strings.Join(s, "-")
}
