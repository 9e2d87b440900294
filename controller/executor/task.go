package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/cluster/placement"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/controller/values"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/plugins"
)

// stepTask moves one task run at path id of sc forward: launches an
// attempt if none is in flight (after any retry backoff), otherwise asks
// the plugin where the attempt stands; applies the task's attempt
// timeout. The node's own timeout is its caller's (stepNode).
func (r *round) stepTask(ctx context.Context, sc *scope, id, taskName string, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage, ns *v1alpha1.NodeStatus) error {
	key, cached := r.cacheKey(taskName, task, inputs)
	if !cached {
		return r.runTask(ctx, sc, id, task, inputs, ns)
	}
	if n := len(ns.Attempts); (n == 0 || ns.Attempts[n-1].Phase.IsTerminal()) && !r.launchedUnrecorded(id, int32(n)) {
		if c := r.checkCache(ctx, key, id, task, ns); c != cacheRun {
			if ns.StartedAt == nil {
				ns.StartedAt = &r.now
			}
			return nil
		}
	} else if task.Cache.Serialize {
		_, _, _ = r.Cache.Reserve(ctx, key, r.owner(id), r.now.Time, reservationTTL) // renew
	}
	err := r.runTask(ctx, sc, id, task, inputs, ns)
	if err == nil && ns.Phase.IsTerminal() {
		r.afterAttempt(ctx, key, id, task, ns)
	}
	return err
}

// launchedUnrecorded reports whether the attempt numbered num of node id
// already has a pod in a target though the status records no such
// attempt: an earlier round created it and lost its status write. That
// attempt runs to its end (placement finds its pod, the plugin adopts it)
// rather than the round taking another path, such as a cache hit that
// would leave the pod running unrecorded and never deleted.
func (r *round) launchedUnrecorded(id string, num int32) bool {
	l, ok := r.Clusters.(LaunchFinder)
	return ok && l.Launched(r.taskID(id, num))
}

// runTask runs the attempts of one task node, placing them with sc's
// clusterSelector.
func (r *round) runTask(ctx context.Context, sc *scope, id string, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage, ns *v1alpha1.NodeStatus) error {
	ns.Type = dag.TaskType(task)
	plugin, err := r.Plugins.Get(ns.Type)
	if err != nil {
		r.failNode(ns, "NoPlugin", err.Error())
		return nil
	}
	if ns.StartedAt == nil {
		ns.StartedAt = &r.now
	}
	if n := len(ns.Attempts); n == 0 || ns.Attempts[n-1].Phase.IsTerminal() {
		if ns.RetryAt != nil && ns.RetryAt.After(r.now.Time) {
			r.res.after(ns.RetryAt.Sub(r.now.Time))
			return nil
		}
		ns.RetryAt = nil
		if !r.newAttempt(id, task, sc.selector, ns, plugins.NeedsCluster(plugin)) {
			return nil
		}
	}
	a := &ns.Attempts[len(ns.Attempts)-1]
	if a.Cluster != "" {
		h := r.Clusters.Health(a.Cluster)
		if h.Lost || (h.Drained && a.Phase != v1alpha1.NodeRunning) {
			return r.evacuate(ctx, id, plugin, task, ns, a, h)
		}
		if h.LostIn > 0 {
			r.res.after(h.LostIn) // no pod event will come from there
		}
		if h.Unreachable && a.Pod == "" {
			// Creating its pod would only fail: wait for the cluster to
			// answer, or for its grace period to end.
			return nil
		}
	}
	if ns.Type == "pod" && a.Pod == "" {
		var err error
		if inputs, err = r.largeInputsAsFiles(id, task, inputs); err != nil {
			if storeDown(err) {
				ns.Reason, ns.Message = ReasonWaitingForStore, "storing a large input for the pod: "+err.Error()
				r.res.after(storeWait)
				return nil
			}
			return fmt.Errorf("node %s: %w", id, err)
		}
	}
	tc, ok := r.taskContext(id, task, inputs, a)
	if !ok {
		if r.Clusters.Health(a.Cluster).Known {
			// Its Cluster object is there but its client is still being
			// built (a replica starting, a Secret being read again): the
			// attempt is not lost, look again shortly. A cluster that
			// never gets a client is unreachable to the prober too and
			// fails over after its grace period.
			r.res.after(clientWait)
			return nil
		}
		r.endAttempt(ns, a, plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: v1alpha1.ReasonNoCluster,
			Message: fmt.Sprintf("cluster %s is no longer registered", a.Cluster)}, task)
		return nil
	}
	if t := task.Timeout; t != nil && t.Duration > 0 && a.StartedAt != nil {
		left := t.Duration - r.now.Sub(a.StartedAt.Time)
		if left <= 0 {
			if err := r.abort(ctx, plugin, tc); err != nil {
				return err
			}
			r.endAttempt(ns, a, plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: v1alpha1.ReasonTimedOut,
				Message: fmt.Sprintf("attempt %d timed out after %s", a.Number, t.Duration)}, task)
			return nil
		}
		r.res.after(left)
	}
	info, err := r.handle(ctx, plugin, tc)
	if perm, ok := plugins.AsPermanent(err); ok {
		// Retrying the round would meet the same refusal for ever.
		info, err = plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: perm.Reason, Message: perm.Error()}, nil
	}
	if err != nil {
		return err
	}
	if info.Resource != "" {
		if a.Pod == "" && a.Number == 0 && r.upstreamDone {
			if at, ok := triggerOf(ctx); ok {
				// Wall time, not the injected clock: the trigger is a real
				// event's arrival and the figure is a real latency.
				r.res.Overheads = append(r.res.Overheads, time.Since(at))
			}
		}
		a.Pod = info.Resource
	}
	if info.State != "" && len(info.State) <= plugins.MaxStateSize {
		a.State = info.State
	}
	if info.CheckAfter > 0 {
		r.res.after(info.CheckAfter)
	}
	switch info.Phase {
	case plugins.PhaseQueued, plugins.PhaseRunning:
		phase := v1alpha1.NodeQueued
		if info.Phase == plugins.PhaseRunning {
			phase = v1alpha1.NodeRunning
		}
		a.Phase, a.Message = phase, info.Message
		ns.Phase, ns.Reason, ns.Message = phase, info.Reason, info.Message
	case plugins.PhaseSucceeded:
		outs, err := checkOutputs(task, info.Outputs)
		if err != nil {
			info = plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: v1alpha1.ReasonBadOutputs, Message: err.Error(), ExitCode: info.ExitCode}
			r.endAttempt(ns, a, info, task)
			return nil
		}
		// A value the plugin returned inline but large (an http answer)
		// is offloaded before it reaches the status.
		if outs, err = r.keepAll(id, a.Number, outs); err != nil {
			if r.waitForStore(ns, "storing its outputs", err) {
				return nil // the attempt stays as it is: asked again once the store answers
			}
			return fmt.Errorf("node %s: store its outputs: %w", id, err)
		}
		r.endAttempt(ns, a, info, task)
		ns.Outputs = outs
	default:
		r.endAttempt(ns, a, info, task)
	}
	return nil
}

// evacuate ends an attempt whose cluster was lost or drained as a system
// failure, so the node retries on another cluster without spending the
// task's retries. On a drained cluster (which answers) the pod is deleted
// now; on a lost one it is recorded as an orphan, deleted when the
// cluster answers again.
func (r *round) evacuate(ctx context.Context, id string, plugin plugins.Plugin, task *v1alpha1.TaskTemplate, ns *v1alpha1.NodeStatus, a *v1alpha1.Attempt, h plugins.ClusterHealth) error {
	reason, msg := v1alpha1.ReasonClusterDrained, h.Why+": attempt moved before its pod started"
	if h.Lost {
		reason, msg = v1alpha1.ReasonClusterLost, h.Why+": attempt abandoned there"
		r.wf.Status.Orphans = append(r.wf.Status.Orphans, v1alpha1.Orphan{Cluster: a.Cluster, Node: id, Attempt: a.Number, Type: ns.Type})
	} else if c, ok := r.Clusters.Get(a.Cluster); ok {
		tc := &plugins.TaskContext{ID: r.taskID(id, a.Number), Task: task, Cluster: c, Launched: a.Pod != "", State: a.State}
		if err := r.abort(ctx, plugin, tc); err != nil {
			return fmt.Errorf("move node %s off drained cluster %s: %w", id, a.Cluster, err)
		}
	}
	failovers.WithLabelValues(a.Cluster, reason).Inc()
	r.endAttempt(ns, a, plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: reason, Message: msg}, task)
	return nil
}

// newAttempt appends an attempt placed on a cluster that matches the
// task's and sel (the enclosing DAGs') clusterSelectors; false if none
// fits (the node stays queued and the round asks to be run again).
func (r *round) newAttempt(id string, task *v1alpha1.TaskTemplate, sel map[string]string, ns *v1alpha1.NodeStatus, needsCluster bool) bool {
	num := int32(len(ns.Attempts))
	if !needsCluster {
		ns.Attempts = append(ns.Attempts, v1alpha1.Attempt{Number: num, Phase: v1alpha1.NodeQueued, StartedAt: &r.now})
		ns.Phase = v1alpha1.NodeQueued
		return true
	}
	if r.Quota != nil {
		if ok, why := r.Quota.Admit(r.taskID(id, num)); !ok {
			ns.Phase, ns.Reason, ns.Message = v1alpha1.NodeQueued, "NamespaceQuota", why
			r.res.after(2 * time.Second)
			return false
		}
	}
	c, err := r.Clusters.Pick(r.taskID(id, num), task, sel)
	if err != nil {
		ns.Phase, ns.Reason, ns.Message = v1alpha1.NodeQueued, v1alpha1.ReasonNoCluster, err.Error()
		// Room appears when a pod ends (seconds); a cluster comes back or
		// gets added on a human's time.
		var nf *placement.NoFit
		if errors.As(err, &nf) && nf.OnlyFull() {
			r.res.after(time.Second)
		} else {
			r.res.after(5 * time.Second)
		}
		return false
	}
	ns.Attempts = append(ns.Attempts, v1alpha1.Attempt{Number: num, Cluster: c.Name, Phase: v1alpha1.NodeQueued, StartedAt: &r.now})
	ns.Phase = v1alpha1.NodeQueued
	return true
}

func (r *round) taskID(id string, attempt int32) plugins.TaskID {
	return plugins.TaskID{Namespace: r.wf.Namespace, Workflow: r.wf.Name, WorkflowUID: string(r.wf.UID), Node: id, Attempt: attempt}
}

func (r *round) taskContext(id string, task *v1alpha1.TaskTemplate, inputs map[string]json.RawMessage, a *v1alpha1.Attempt) (*plugins.TaskContext, bool) {
	tc := &plugins.TaskContext{ID: r.taskID(id, a.Number), Task: task, Inputs: inputs, Launched: a.Pod != "", State: a.State}
	if r.Values != nil {
		tc.Materialize = r.materializeCtx
	}
	if a.Cluster == "" {
		return tc, true // a plugin that needs no cluster
	}
	c, ok := r.Clusters.Get(a.Cluster)
	if !ok {
		return nil, false
	}
	tc.Cluster = c
	return tc, true
}

// clientWait is how soon an attempt on a cluster whose client is not
// built yet is looked at again.
const clientWait = time.Second

// endAttempt records a finished attempt and decides the node's fate.
func (r *round) endAttempt(ns *v1alpha1.NodeStatus, a *v1alpha1.Attempt, info plugins.PhaseInfo, task *v1alpha1.TaskTemplate) {
	a.FinishedAt, a.Reason, a.Message, a.ExitCode = &r.now, info.Reason, info.Message, info.ExitCode
	if info.Phase == plugins.PhaseSucceeded {
		r.upstreamDone = true
		a.Phase = v1alpha1.NodeSucceeded
		ns.Phase, ns.Reason, ns.Message, ns.FinishedAt = v1alpha1.NodeSucceeded, "", "", &r.now
		return
	}
	a.Phase = v1alpha1.NodeFailed
	a.System = info.Phase == plugins.PhaseSystemFailed
	user, system := 0, 0
	for _, at := range ns.Attempts {
		if at.Phase != v1alpha1.NodeFailed {
			continue
		}
		if at.System {
			system++
		} else {
			user++
		}
	}
	switch {
	case a.System && system <= r.MaxSystemRetries:
		ns.Phase, ns.Reason = v1alpha1.NodeRetrying, info.Reason
		ns.Message = fmt.Sprintf("system failure on attempt %d, retrying (does not count against retries): %s", a.Number, info.Message)
		r.res.after(0)
	case !a.System && user <= int(task.Retries):
		ns.Phase, ns.Reason = v1alpha1.NodeRetrying, info.Reason
		ns.Message = fmt.Sprintf("attempt %d failed, retry %d of %d: %s", a.Number, user, task.Retries, info.Message)
		delay := Backoff(task.Backoff, user)
		if delay > 0 {
			at := metav1.NewTime(r.now.Add(delay))
			ns.RetryAt = &at
			ns.Message += fmt.Sprintf(" (next attempt in %s)", delay)
		}
		r.res.after(delay)
	default:
		msg := info.Message
		if len(ns.Attempts) > 1 {
			msg = fmt.Sprintf("%s (after %d attempts)", msg, len(ns.Attempts))
		}
		r.failNode(ns, info.Reason, msg)
	}
}

func (r *round) failNode(ns *v1alpha1.NodeStatus, reason, msg string) {
	ns.Phase, ns.Reason, ns.Message, ns.FinishedAt = v1alpha1.NodeFailed, reason, msg, &r.now
	if ns.StartedAt == nil {
		ns.StartedAt = &r.now
	}
}

// abortAttempt stops the attempt in flight at path id, if any.
func (r *round) abortAttempt(ctx context.Context, id string, ns *v1alpha1.NodeStatus, reason, msg string) {
	n := len(ns.Attempts)
	if n == 0 || ns.Attempts[n-1].Phase.IsTerminal() {
		return
	}
	a := &ns.Attempts[n-1]
	if p, err := r.Plugins.Get(ns.Type); err == nil {
		if tc, ok := r.taskContext(id, nil, nil, a); ok {
			if err := r.abort(ctx, p, tc); err != nil {
				msg += fmt.Sprintf(" (stopping attempt %d failed: %v)", a.Number, err)
			}
		}
	}
	a.Phase, a.FinishedAt, a.Reason, a.Message = v1alpha1.NodeAborted, &r.now, reason, msg
}

// checkOutputs parses a task's output object and checks it against the
// declared outputs: every declared output present with its type, nothing
// undeclared.
func checkOutputs(task *v1alpha1.TaskTemplate, raw json.RawMessage) (map[string]apiextJSON, error) {
	if len(task.Outputs) == 0 && len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("the task wrote no outputs, it declares %s: write them as one JSON object to $ROTOR_OUTPUT_FILE", declared(task))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		hint := ""
		if len(raw) >= ref.InlineLimit-16 {
			// A container's termination message holds 4 KiB: a larger
			// outputs JSON arrives cut short.
			hint = fmt.Sprintf("; the outputs JSON reached %d bytes, the most a termination message holds: write large values as files (outputFiles: true, $ROTOR_OUTPUTS_DIR/<name>)", len(raw))
		}
		return nil, fmt.Errorf("outputs are not a JSON object (%v): got %q%s", err, truncate(string(raw), 200), hint)
	}
	var problems []string
	out := map[string]apiextJSON{}
	for _, name := range slices.Sorted(maps.Keys(task.Outputs)) {
		v, ok := obj[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("output %q is missing", name))
			continue
		}
		if err := values.Check(task.Outputs[name], v); err != nil {
			problems = append(problems, fmt.Sprintf("output %q: %v", name, err))
			continue
		}
		out[name] = apiextJSON{Raw: v}
	}
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		if _, ok := task.Outputs[name]; !ok {
			problems = append(problems, fmt.Sprintf("output %q is not declared (declared: %s)", name, declared(task)))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("bad outputs: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

func declared(task *v1alpha1.TaskTemplate) string {
	if len(task.Outputs) == 0 {
		return "none"
	}
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(task.Outputs)) {
		parts = append(parts, k+" ("+string(task.Outputs[k])+")")
	}
	return strings.Join(parts, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
