package executor

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

func TestBackoff(t *testing.T) {
	d := func(s string) *metav1.Duration { v, _ := time.ParseDuration(s); return &metav1.Duration{Duration: v} }
	three := int32(3)
	for _, tc := range []struct {
		name string
		b    *v1alpha1.Backoff
		n    int
		want time.Duration
	}{
		{"none", nil, 3, 0},
		{"first retry waits initial", &v1alpha1.Backoff{Initial: d("1s")}, 1, time.Second},
		{"doubles by default", &v1alpha1.Backoff{Initial: d("1s")}, 4, 8 * time.Second},
		{"factor", &v1alpha1.Backoff{Initial: d("1s"), Factor: &three}, 3, 9 * time.Second},
		{"capped", &v1alpha1.Backoff{Initial: d("1s"), Max: d("5s")}, 10, 5 * time.Second},
		{"huge n stays capped", &v1alpha1.Backoff{Initial: d("1s")}, 500, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Backoff(tc.b, tc.n); got != tc.want {
				t.Fatalf("Backoff(n=%d) = %s, want %s", tc.n, got, tc.want)
			}
		})
	}
}

func TestRetryWaitsForBackoff(t *testing.T) {
	e, fp, clk, wf := setup(t, "tasks: {t: {retries: 2, backoff: {initial: 10s}, container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t}]")
	fp.answers["a"] = []plugins.PhaseInfo{fail(1, "flake"), ok("")}
	res := step(t, e, wf)
	if res.RequeueAfter != 10*time.Second || wf.Status.Nodes["a"].Phase != v1alpha1.NodeRetrying {
		t.Fatalf("after failure: requeue %s, phase %s; want 10s and Retrying", res.RequeueAfter, wf.Status.Nodes["a"].Phase)
	}
	clk.Step(5 * time.Second)
	step(t, e, wf)
	if n := len(wf.Status.Nodes["a"].Attempts); n != 1 {
		t.Fatalf("%d attempts 5s into a 10s backoff, want 1", n)
	}
	clk.Step(5 * time.Second)
	step(t, e, wf)
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || len(wf.Status.Nodes["a"].Attempts) != 2 {
		t.Fatalf("after backoff: %s with %d attempts, want Succeeded with 2", wf.Status.Phase, len(wf.Status.Nodes["a"].Attempts))
	}
}

func TestAbortStopsEverything(t *testing.T) {
	e, fp, _, wf := setup(t, "tasks: {t: {container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t}, {name: b, task: t, dependsOn: [a]}]")
	step(t, e, wf)
	wf.Spec.Abort = true
	step(t, e, wf)
	st := wf.Status
	if st.Phase != v1alpha1.WorkflowAborted || st.Nodes["a"].Phase != v1alpha1.NodeAborted || st.Nodes["b"].Phase != v1alpha1.NodeSkipped || fp.aborted["a"] != 1 {
		t.Fatalf("workflow %s, a %s (aborted %d), b %s; want Aborted, Aborted (1), Skipped", st.Phase, st.Nodes["a"].Phase, fp.aborted["a"], st.Nodes["b"].Phase)
	}
}

func TestActiveDeadline(t *testing.T) {
	e, fp, clk, wf := setup(t, "activeDeadline: 1m\ntasks: {t: {container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t}]")
	if res := step(t, e, wf); res.RequeueAfter != time.Minute {
		t.Fatalf("RequeueAfter = %s, want 1m", res.RequeueAfter)
	}
	clk.Step(61 * time.Second)
	step(t, e, wf)
	if wf.Status.Phase != v1alpha1.WorkflowFailed || wf.Status.Reason != v1alpha1.ReasonDeadline || fp.aborted["a"] != 1 {
		t.Fatalf("workflow %s/%s, aborted %d; want Failed/DeadlineExceeded with a stopped", wf.Status.Phase, wf.Status.Reason, fp.aborted["a"])
	}
}

func TestNodeTimeoutCoversRetries(t *testing.T) {
	e, fp, clk, wf := setup(t, "tasks: {t: {retries: 5, container: {image: x, command: [sh]}}}\nnodes: [{name: a, task: t, timeout: 30s}]")
	fp.answers["a"] = []plugins.PhaseInfo{fail(1, "x"), {Phase: plugins.PhaseRunning}}
	step(t, e, wf)
	step(t, e, wf)
	clk.Step(31 * time.Second)
	step(t, e, wf)
	ns := wf.Status.Nodes["a"]
	if ns.Phase != v1alpha1.NodeFailed || !strings.Contains(ns.Message, "timeout of 30s") || fp.aborted["a"] != 1 {
		t.Fatalf("node %s %q (aborted %d), want Failed by its timeout with the attempt stopped", ns.Phase, ns.Message, fp.aborted["a"])
	}
}
