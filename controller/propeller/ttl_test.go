package propeller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// TestTTLLeft: the workflow's own TTL for its outcome, else its
// namespace's; a running workflow, one with no TTL, and a malformed
// annotation limit nothing; Aborted counts as a failure.
func TestTTLLeft(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	finished := metav1.NewTime(now.Add(-10 * time.Second))
	wf := func(phase v1alpha1.WorkflowPhase, ttl *v1alpha1.WorkflowTTL) *v1alpha1.Workflow {
		w := &v1alpha1.Workflow{Spec: v1alpha1.WorkflowSpec{TTL: ttl}, Status: v1alpha1.WorkflowStatus{Phase: phase}}
		if phase.IsTerminal() {
			w.Status.FinishedAt = &finished
		}
		return w
	}
	d := func(s time.Duration) *metav1.Duration { return &metav1.Duration{Duration: s} }
	own := &v1alpha1.WorkflowTTL{AfterSuccess: d(time.Minute), AfterFailure: d(5 * time.Second)}
	nsTTL := map[string]string{AnnotTTLAfterSuccess: "1h", AnnotTTLAfterFailure: "30s"}
	for _, c := range []struct {
		name string
		wf   *v1alpha1.Workflow
		ann  map[string]string
		left time.Duration
		ok   bool
	}{
		{"own, succeeded", wf(v1alpha1.WorkflowSucceeded, own), nsTTL, 50 * time.Second, true},
		{"own, failed: past", wf(v1alpha1.WorkflowFailed, own), nsTTL, -5 * time.Second, true},
		{"own, aborted is a failure", wf(v1alpha1.WorkflowAborted, own), nil, -5 * time.Second, true},
		{"namespace's, succeeded", wf(v1alpha1.WorkflowSucceeded, nil), nsTTL, time.Hour - 10*time.Second, true},
		{"namespace's, failed", wf(v1alpha1.WorkflowFailed, nil), nsTTL, 20 * time.Second, true},
		{"own for success only: the namespace's for failure", wf(v1alpha1.WorkflowFailed, &v1alpha1.WorkflowTTL{AfterSuccess: d(time.Minute)}), nsTTL, 20 * time.Second, true},
		{"none", wf(v1alpha1.WorkflowSucceeded, nil), nil, 0, false},
		{"running", wf(v1alpha1.WorkflowRunning, own), nsTTL, 0, false},
		{"malformed annotation", wf(v1alpha1.WorkflowSucceeded, nil), map[string]string{AnnotTTLAfterSuccess: "soon"}, 0, false},
		{"zero: at once", wf(v1alpha1.WorkflowSucceeded, &v1alpha1.WorkflowTTL{AfterSuccess: d(0)}), nil, -10 * time.Second, true},
	} {
		left, ok := ttlLeft(c.wf, c.ann, now)
		if left != c.left || ok != c.ok {
			t.Errorf("%s: %s, %v; want %s, %v", c.name, left, ok, c.left, c.ok)
		}
	}
}
