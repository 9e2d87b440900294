package executor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
)

// Time limits, from the widest:
//
//   - the workflow's activeDeadline (and that of the WorkflowTemplate it
//     runs) bounds everything, onFailure included (Reconcile);
//   - a nested spec's activeDeadline bounds the node that runs it, from
//     the node's start (runChild);
//   - a node's timeout bounds the whole node from its start: every
//     attempt and retry wait of a task, every item of a map, the chosen
//     target of a branch, the nested DAG of a sub-workflow or a dynamic
//     fragment with its onFailure, a gate's wait (stepNode, stepGate);
//   - a task's timeout bounds each attempt (runTask).
//
// Each one that is running asks for a round when it runs out, so a limit
// is enforced on time without waiting for an event. Past a limit, what
// still runs under it is stopped (pods deleted) and the node or workflow
// fails naming the limit.

// timeLeft is how long node n, started at ns.StartedAt, may still run
// under its timeout; bounded is false when it has none.
func (r *round) timeLeft(n *v1alpha1.Node, ns *v1alpha1.NodeStatus) (left time.Duration, bounded bool) {
	t := n.Timeout
	if t == nil || t.Duration <= 0 {
		return 0, false
	}
	return t.Duration - r.now.Sub(ns.StartedAt.Time), true
}

// timeOut fails node n at path id of sc TimedOut, stopping its own
// attempt and everything nested under it.
func (r *round) timeOut(ctx context.Context, sc *scope, n *v1alpha1.Node, id string, ns *v1alpha1.NodeStatus) {
	why := fmt.Sprintf("node %s timed out", id)
	r.abortAttempt(ctx, id, ns, v1alpha1.ReasonTimedOut, "stopped: "+why)
	stopped := r.stopUnder(ctx, id+"/", "", v1alpha1.ReasonTimedOut, why)
	msg := fmt.Sprintf("the node ran longer than its timeout of %s", n.Timeout.Duration)
	if dag.Kind(n) == "task" && ns.Spec == nil {
		msg += fmt.Sprintf(" (%d %s)", len(ns.Attempts), plural(len(ns.Attempts), "attempt"))
		r.releaseCache(ctx, sc, n, id)
	}
	r.failNode(ns, v1alpha1.ReasonTimedOut, msg+stoppedNote(stopped))
}

// stopUnder stops every node in flight whose path starts with prefix,
// except keep, and returns their paths, sorted.
func (r *round) stopUnder(ctx context.Context, prefix, keep, reason, why string) []string {
	st := &r.wf.Status
	var stopped []string
	for id, ns := range st.Nodes {
		if !strings.HasPrefix(id, prefix) || id == keep || ns.Phase.IsTerminal() || ns.Phase == v1alpha1.NodeNotStarted {
			continue
		}
		stopped = append(stopped, id)
	}
	slices.Sort(stopped)
	for _, id := range stopped {
		ns := st.Nodes[id]
		r.abortAttempt(ctx, id, &ns, reason, "stopped: "+why)
		ns.Phase, ns.Reason, ns.Message, ns.FinishedAt = v1alpha1.NodeAborted, reason, "stopped: "+why, &r.now
		st.Nodes[id] = ns
	}
	return stopped
}

// stoppedNote names the nodes a limit stopped, at most five.
func stoppedNote(ids []string) string {
	switch n := len(ids); {
	case n == 0:
		return ""
	case n > 5:
		return fmt.Sprintf("; stopped %s and %d more", strings.Join(ids[:5], ", "), n-5)
	}
	return "; stopped " + strings.Join(ids, ", ")
}

// releaseCache frees the reservation of a serialized cached task that
// something other than its attempts ended, so the executions waiting for
// its key do not wait for the reservation to expire.
func (r *round) releaseCache(ctx context.Context, sc *scope, n *v1alpha1.Node, id string) {
	task, ok := sc.g.Tasks[n.Task]
	if !ok || task.Cache == nil || !task.Cache.Serialize {
		return
	}
	inputs, err := r.resolve(sc, n.Inputs)
	if err != nil {
		return
	}
	if k, ok := r.cacheKey(n.Task, &task, inputs); ok {
		_ = r.Cache.Release(ctx, k, r.owner(id))
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
