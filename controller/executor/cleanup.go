package executor

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/plugins"
)

// Cleanup releases everything the workflow's attempts hold in target
// clusters (deletes their pods, finished ones included), for the deletion
// finalizer. Attempts on clusters no longer registered are skipped and
// returned in skipped, so the caller can say so; any other failure is an
// error to retry.
func (e *Executor) Cleanup(ctx context.Context, wf *v1alpha1.Workflow) (skipped []string, err error) {
	var errs []error
	for i := range wf.Spec.Nodes {
		node := &wf.Spec.Nodes[i]
		task := wf.Spec.Tasks[node.Task]
		p, perr := e.Plugins.Get(dag.TaskType(&task))
		if perr != nil {
			continue
		}
		for _, a := range wf.Status.Nodes[node.Name].Attempts {
			if a.Pod == "" {
				continue
			}
			c, ok := e.Clusters.Get(a.Cluster)
			if !ok {
				skipped = append(skipped, fmt.Sprintf("%s on %s", a.Pod, a.Cluster))
				continue
			}
			tc := &plugins.TaskContext{
				ID:   plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: node.Name, Attempt: a.Number},
				Task: &task, Cluster: c, Launched: true,
			}
			if err := p.Abort(ctx, tc); err != nil {
				errs = append(errs, err)
			}
			if err := p.Finalize(ctx, tc); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return skipped, errors.Join(errs...)
}
