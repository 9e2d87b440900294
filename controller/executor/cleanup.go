package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// CleanupPolicy bounds how long the deletion finalizer waits for target
// clusters that do not answer.
type CleanupPolicy struct {
	// Now is when the round runs.
	Now time.Time
	// GiveUpAfter: pods on a cluster unreachable for longer than this
	// (counted from when it became unreachable, see
	// plugins.ClusterHealth.UnreachableSince) are left behind. 0 waits
	// for ever.
	GiveUpAfter time.Duration
}

// CleanupReport is what Cleanup could not delete.
type CleanupReport struct {
	// LeftBehind lists the pods given up: their cluster is no longer
	// registered, or was unreachable for longer than the policy allows.
	LeftBehind []LeftPod
	// Waiting lists, by cluster name, the clusters whose pods wait for
	// them to answer again.
	Waiting []CleanupWait
}

// LeftPod is a pod the finalizer gave up deleting.
type LeftPod struct {
	Pod, Cluster, Why string
}

func (l LeftPod) String() string { return l.Pod + " on " + l.Cluster + " (" + l.Why + ")" }

// CleanupWait is one unreachable cluster the finalizer waits for.
type CleanupWait struct {
	Cluster string
	// Since is when the cluster became unreachable; GiveUpAt when its
	// pods will be left behind (zero: never).
	Since, GiveUpAt time.Time
	// Pods is how many of the workflow's pods wait there.
	Pods int
}

// Cleanup releases everything the workflow's attempts hold in target
// clusters (deletes their pods, finished ones included), for the deletion
// finalizer. Attempts on clusters no longer registered, or unreachable
// for longer than policy allows, are left behind; those on a cluster
// unreachable for less wait (nothing is sent there: the call would hang
// or fail). Both are in the report. Any other failure is an error to
// retry.
func (e *Executor) Cleanup(ctx context.Context, wf *v1alpha1.Workflow, policy CleanupPolicy) (CleanupReport, error) {
	var rep CleanupReport
	var errs []error
	nodes, err := wf.Status.AllNodes()
	if err != nil {
		return rep, err
	}
	// Pods of an attempt found on a second cluster are the workflow's
	// too (wf is the informer's object: it is not changed).
	orphans := append(slices.Clip(wf.Status.Orphans), e.strays(ctx, wf)...)
	waiting := map[string]*CleanupWait{}
	type where struct {
		cluster, node string
		attempt       int32
	}
	released := map[where]bool{}
	// release deletes the pod of attempt num of node id on cluster, or
	// reports why it waits or is left behind.
	release := func(p plugins.Plugin, id string, num int32, cluster, pod string) {
		released[where{cluster, id, num}] = true
		c, why, wait := e.cleanupTarget(cluster, policy)
		switch {
		case why != "":
			rep.LeftBehind = append(rep.LeftBehind, LeftPod{Pod: pod, Cluster: cluster, Why: why})
			return
		case wait != nil:
			if w := waiting[cluster]; w != nil {
				w.Pods++
			} else {
				wait.Pods, waiting[cluster] = 1, wait
			}
			return
		}
		tc := &plugins.TaskContext{
			ID:      plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: id, Attempt: num},
			Cluster: c, Launched: true,
		}
		if err := e.abort(ctx, p, tc); err != nil {
			errs = append(errs, err)
		}
		if err := e.finalize(ctx, p, tc); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		ns := expand(nodes[id])
		if ns.Type == "" {
			continue
		}
		p, perr := e.Plugins.Get(ns.Type)
		if perr != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", id, perr))
			continue
		}
		free := !plugins.NeedsCluster(p)
		for _, a := range ns.Attempts {
			if a.Pod == "" {
				continue
			}
			if free {
				// Nothing of it lives in a target (an http call): stop it
				// if it still runs (an asynchronous call's cancel URL).
				if a.Phase.IsTerminal() {
					continue
				}
				tc := &plugins.TaskContext{
					ID:       plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: id, Attempt: a.Number},
					Launched: true, State: a.State,
				}
				if err := e.abort(ctx, p, tc); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			release(p, id, a.Number, a.Cluster, a.Pod)
		}
	}
	// Orphans not recorded as attempts there: pods found on a second
	// cluster.
	for _, o := range orphans {
		if released[where{o.Cluster, o.Node, o.Attempt}] {
			continue
		}
		p, perr := e.Plugins.Get(o.Type)
		if perr != nil {
			errs = append(errs, fmt.Errorf("orphan of node %s: %w", o.Node, perr))
			continue
		}
		release(p, o.Node, o.Attempt, o.Cluster, fmt.Sprintf("attempt %d of node %s", o.Attempt, o.Node))
	}
	for _, name := range slices.Sorted(maps.Keys(waiting)) {
		rep.Waiting = append(rep.Waiting, *waiting[name])
	}
	return rep, errors.Join(errs...)
}

// cleanupTarget decides what to do with a deleted workflow's pods on a
// cluster: delete them with the client it returns, leave them behind
// (why says why), or wait for the cluster.
func (e *Executor) cleanupTarget(name string, policy CleanupPolicy) (c *plugins.Cluster, why string, wait *CleanupWait) {
	h := e.Clusters.Health(name)
	if !h.Known {
		return nil, "cluster no longer registered", nil
	}
	c, ok := e.Clusters.Get(name)
	if !h.Unreachable && ok {
		return c, "", nil
	}
	since := h.UnreachableSince
	if since.IsZero() || since.After(policy.Now) {
		since = policy.Now
	}
	w := &CleanupWait{Cluster: name, Since: since}
	if policy.GiveUpAfter > 0 {
		w.GiveUpAt = since.Add(policy.GiveUpAfter)
		if !policy.Now.Before(w.GiveUpAt) {
			return nil, fmt.Sprintf("unreachable since %s, longer than %s", since.UTC().Format(time.RFC3339), policy.GiveUpAfter), nil
		}
	}
	return nil, "", w
}

// strays returns, as orphans not yet recorded, the pods of attempts that a
// target other than the recorded one holds too (see cluster/copies.go for
// how that happens): left alone they would run beside the recorded
// attempt and outlive the workflow. It does not change wf.
func (e *Executor) strays(ctx context.Context, wf *v1alpha1.Workflow) []v1alpha1.Orphan {
	f, ok := e.Clusters.(StrayFinder)
	if !ok || !f.Doubled(wf.Namespace, string(wf.UID)) {
		return nil
	}
	nodes, err := wf.Status.AllNodes()
	if err != nil {
		return nil // the round fails on it with the reason
	}
	var out []v1alpha1.Orphan
	have := map[v1alpha1.Orphan]bool{}
	for _, o := range wf.Status.Orphans {
		have[o] = true
	}
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		ns := expand(nodes[id])
		for _, a := range ns.Attempts {
			if a.Cluster == "" {
				continue
			}
			tid := plugins.TaskID{Namespace: wf.Namespace, Workflow: wf.Name, WorkflowUID: string(wf.UID), Node: id, Attempt: a.Number}
			for _, c := range f.Strays(tid, a.Cluster) {
				o := v1alpha1.Orphan{Cluster: c, Node: id, Attempt: a.Number, Type: ns.Type}
				if have[o] {
					continue
				}
				have[o] = true
				out = append(out, o)
				e.logger(ctx, wf).WarnContext(ctx, "attempt's pod found on a second cluster: deleting it there as an orphan (a round whose status write was lost created it while that cluster was unreachable)",
					"node", id, "attempt", a.Number, "cluster", c, "recordedCluster", a.Cluster)
			}
		}
	}
	return out
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
		log := e.logger(ctx, wf).With("node", o.Node, "attempt", o.Attempt, "cluster", o.Cluster)
		if err := e.abort(ctx, p, tc); err != nil {
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
