package propeller

import (
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func status(wf v1alpha1.WorkflowPhase, nodes map[string]v1alpha1.NodePhase) v1alpha1.WorkflowStatus {
	st := v1alpha1.WorkflowStatus{Phase: wf, Nodes: map[string]v1alpha1.NodeStatus{}}
	for k, p := range nodes {
		st.Nodes[k] = v1alpha1.NodeStatus{Phase: p, Attempts: []v1alpha1.Attempt{{Phase: p, Pod: "pod-" + k}}}
	}
	return st
}

func TestOnlyStarted(t *testing.T) {
	const (
		q = v1alpha1.NodeQueued
		r = v1alpha1.NodeRunning
		s = v1alpha1.NodeSucceeded
	)
	run := v1alpha1.WorkflowRunning
	retried := status(run, map[string]v1alpha1.NodePhase{"a": r})
	retried.Nodes["a"] = v1alpha1.NodeStatus{Phase: r, Attempts: []v1alpha1.Attempt{{Phase: v1alpha1.NodeFailed}, {Phase: r}}}
	for _, c := range []struct {
		name          string
		before, after v1alpha1.WorkflowStatus
		want          bool
	}{
		{"one node starts", status(run, map[string]v1alpha1.NodePhase{"a": q, "b": q}), status(run, map[string]v1alpha1.NodePhase{"a": r, "b": q}), true},
		{"two nodes start", status(run, map[string]v1alpha1.NodePhase{"a": q, "b": q}), status(run, map[string]v1alpha1.NodePhase{"a": r, "b": r}), true},
		{"one starts, one ends", status(run, map[string]v1alpha1.NodePhase{"a": q, "b": r}), status(run, map[string]v1alpha1.NodePhase{"a": r, "b": s}), false},
		{"a node ends", status(run, map[string]v1alpha1.NodePhase{"a": r}), status(run, map[string]v1alpha1.NodePhase{"a": s}), false},
		{"a node is launched", status(run, map[string]v1alpha1.NodePhase{"a": q}), status(run, map[string]v1alpha1.NodePhase{"a": q, "b": q}), false},
		{"a new attempt runs", status(run, map[string]v1alpha1.NodePhase{"a": q}), retried, false},
		{"the workflow starts too", status(v1alpha1.WorkflowPending, map[string]v1alpha1.NodePhase{"a": q}), status(run, map[string]v1alpha1.NodePhase{"a": r}), false},
		{"no change", status(run, map[string]v1alpha1.NodePhase{"a": q}), status(run, map[string]v1alpha1.NodePhase{"a": q}), false},
	} {
		if got := onlyStarted(&c.before, &c.after); got != c.want {
			t.Errorf("%s: onlyStarted = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestHoldEndsAfterTheDelay: a start-only write waits at most the delay
// from the first time it was held, then goes out; any write resets it.
func TestHoldEndsAfterTheDelay(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &Controller{startedDelay: time.Second, deferred: map[string]time.Time{}, now: func() time.Time { return now }}
	before := status(v1alpha1.WorkflowRunning, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeQueued})
	after := status(v1alpha1.WorkflowRunning, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeRunning})
	steps := []struct {
		advance time.Duration
		hold    bool
		wait    time.Duration
	}{
		{0, true, time.Second},
		{600 * time.Millisecond, true, 400 * time.Millisecond},
		{400 * time.Millisecond, false, 0}, // the delay is over: write
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		wait, hold := c.holdStartOnly("ns/wf", &before, &after)
		if hold != s.hold || wait != s.wait {
			t.Fatalf("step %d: hold %v wait %s, want %v %s", i, hold, wait, s.hold, s.wait)
		}
	}
	c.forgetHeld("ns/wf")
	if _, hold := c.holdStartOnly("ns/wf", &before, &after); !hold {
		t.Error("after a write, the next start-only change is held again")
	}
	c.startedDelay = 0
	if _, hold := c.holdStartOnly("other", &before, &after); hold {
		t.Error("a zero delay held a write")
	}
}
