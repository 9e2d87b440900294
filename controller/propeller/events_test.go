package propeller

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// TestEventPolicy: which phase changes become Events under each policy.
func TestEventPolicy(t *testing.T) {
	wf := func(phase v1alpha1.WorkflowPhase, nodes map[string]v1alpha1.NodePhase) *v1alpha1.Workflow {
		w := &v1alpha1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: "wf", Namespace: "team"}}
		w.Status = status(phase, nodes)
		return w
	}
	steps := [][2]*v1alpha1.Workflow{
		{wf(v1alpha1.WorkflowPending, nil), wf(v1alpha1.WorkflowRunning, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeRunning})},
		{wf(v1alpha1.WorkflowRunning, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeRunning}), wf(v1alpha1.WorkflowRunning, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeRetrying})},
		{wf(v1alpha1.WorkflowRunning, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeRetrying}), wf(v1alpha1.WorkflowFailed, map[string]v1alpha1.NodePhase{"a": v1alpha1.NodeFailed})},
		{wf(v1alpha1.WorkflowPending, nil), wf(v1alpha1.WorkflowSucceeded, map[string]v1alpha1.NodePhase{"b": v1alpha1.NodeSucceeded})},
	}
	for _, tc := range []struct {
		policy EventPolicy
		want   string
	}{
		{"", "Warning NodeFailed,Warning NodeRetrying,Warning WorkflowFailed"},
		{EventsFailures, "Warning NodeFailed,Warning NodeRetrying,Warning WorkflowFailed"},
		{EventsAll, "Normal WorkflowRunning,Normal WorkflowSucceeded,Warning NodeFailed,Warning NodeRetrying,Warning WorkflowFailed"},
		{EventsNone, ""},
	} {
		t.Run(fmt.Sprintf("policy %q", tc.policy), func(t *testing.T) {
			rec := record.NewFakeRecorder(100)
			c := New(nil, nil, nil, Options{Events: rec, EventPolicy: tc.policy})
			for _, s := range steps {
				c.recordTransitions(context.Background(), s[0], s[1])
			}
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				f := strings.Fields(e)
				got = append(got, f[0]+" "+f[1])
			}
			sort.Strings(got)
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("events %v, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseEventPolicy("some"); err == nil || !strings.Contains(err.Error(), "failures, all or none") {
		t.Errorf("ParseEventPolicy(some) = %v", err)
	}
}
