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

// CleanOrphans deletes what attempts abandoned on lost clusters left
// there, for each such cluster that answers again, and drops them from
// the status. It reports whether the status changed and whether orphans
// remain (so the caller looks again later). Failures are kept for the
// next call: the cluster may have gone away again.
func (e *Executor) CleanOrphans(ctx context.Context, wf *v1alpha1.Workflow) (changed, remain bool) {
	if len(wf.Status.Orphans) == 0 {
		return false, false
	}
	keep := wf.Status.Orphans[:0:0]
	for _, o := range wf.Status.Orphans {
		h := e.Clusters.Health(o.Cluster)
		if !h.Known {
			changed = true // the Cluster was deleted: nothing can reach its pods
			continue
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
		if err := p.Abort(ctx, tc); err != nil {
			if e.Logger != nil {
				e.Logger.Warn("deleting an orphaned pod failed, will retry", "workflow", wf.Namespace+"/"+wf.Name, "node", o.Node, "attempt", o.Attempt, "cluster", o.Cluster, "err", err)
			}
			keep = append(keep, o)
			continue
		}
		if e.Logger != nil {
			e.Logger.Info("orphaned pod deleted", "workflow", wf.Namespace+"/"+wf.Name, "node", o.Node, "attempt", o.Attempt, "cluster", o.Cluster)
		}
		orphansDeleted.WithLabelValues(o.Cluster).Inc()
		changed = true
	}
	if changed {
		wf.Status.Orphans = keep
		if len(keep) == 0 {
			wf.Status.Orphans = nil
		}
	}
	return changed, len(keep) > 0
}
