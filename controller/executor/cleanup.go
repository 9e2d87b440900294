package executor

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// Cleanup releases everything the workflow's attempts hold in target
// clusters (deletes their pods, finished ones included), for the deletion
// finalizer. Attempts on clusters no longer registered are skipped and
// returned, so the caller can say so; any other failure is an error to
// retry.
func (e *Executor) Cleanup(ctx context.Context, wf *v1alpha1.Workflow) (skipped []string, err error) {
	var errs []error
	nodes, err := wf.Status.AllNodes()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(nodes))
	for id := range nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ns := expand(nodes[id])
		if ns.Type == "" {
			continue
		}
		p, perr := e.Plugins.Get(ns.Type)
		if perr != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", id, perr))
			continue
		}
		for _, a := range ns.Attempts {
			if a.Pod == "" {
				continue
			}
			c, ok := e.Clusters.Get(a.Cluster)
			if !ok {
				skipped = append(skipped, fmt.Sprintf("%s on %s", a.Pod, a.Cluster))
				continue
			}
			tc := &plugins.TaskContext{
				ID:      plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: id, Attempt: a.Number},
				Cluster: c, Launched: true,
			}
			if err := abort(ctx, p, tc); err != nil {
				errs = append(errs, err)
			}
			if err := finalize(ctx, p, tc); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return skipped, errors.Join(errs...)
}

// cleanOrphans deletes what attempts abandoned on lost clusters left
// there, for each such cluster that is ready again, and drops them from
// the status. It reports whether orphans remain (the caller looks again
// later). Failures stay for the next call: the cluster may be gone again.
func (e *Executor) cleanOrphans(ctx context.Context, wf *v1alpha1.Workflow) (remain bool) {
	if len(wf.Status.Orphans) == 0 {
		return false
	}
	var keep []v1alpha1.Orphan
	for _, o := range wf.Status.Orphans {
		h := e.Clusters.Health(o.Cluster)
		if !h.Known {
			continue // the Cluster was deleted: nothing can reach its pods
		}
		c, ok := e.Clusters.Get(o.Cluster)
		p, perr := e.Plugins.Get(o.Type)
		// Deleting on a cluster that is not ready would likely fail: wait
		// until it is (its pod events bring the workflow back).
		if h.Unreachable || h.NotReady || !ok || perr != nil {
			keep = append(keep, o)
			continue
		}
		tc := &plugins.TaskContext{
			ID:      plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: o.Node, Attempt: o.Attempt},
			Cluster: c, Launched: true,
		}
		log := e.logger().With("namespace", wf.Namespace, "workflow", wf.Name, "node", o.Node, "attempt", o.Attempt, "cluster", o.Cluster)
		if err := abort(ctx, p, tc); err != nil {
			log.WarnContext(ctx, "deleting an orphaned pod failed, will retry", "err", err)
			keep = append(keep, o)
			continue
		}
		log.InfoContext(ctx, "orphaned pod deleted")
		orphansDeleted.WithLabelValues(o.Cluster).Inc()
	}
	wf.Status.Orphans = keep
	return len(keep) > 0
}
