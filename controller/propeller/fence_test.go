package propeller

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/generated/clientset/versioned/fake"
)

// fenceScope owns every namespace at epoch 3 and records fencing.
type fenceScope struct {
	clientScope
	fenced []int64
	ns     []string
}

func (s *fenceScope) Fenced(ns string, seen int64) {
	s.ns = append(s.ns, ns)
	s.fenced = append(s.fenced, seen)
}

// TestNewerEpochFences: a round that finds the object written at a newer
// epoch than the replica's reports the fencing with that epoch and
// namespace and writes nothing; at the replica's own epoch or an older
// one it does not fence. (The workflow has ended, so a round that goes on
// returns before the executor.)
func TestNewerEpochFences(t *testing.T) {
	for _, tc := range []struct {
		name   string
		epoch  int64
		fenced bool
	}{
		{"newer epoch fences", 5, true},
		{"own epoch does not", 3, false},
		{"older epoch does not", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wf := &v1alpha1.Workflow{
				ObjectMeta: metav1.ObjectMeta{Name: "wf", Namespace: "team", Finalizers: []string{Finalizer}},
				Status:     v1alpha1.WorkflowStatus{ShardEpoch: tc.epoch, Phase: v1alpha1.WorkflowSucceeded},
			}
			client := fake.NewSimpleClientset(wf)
			scope := &fenceScope{clientScope: clientScope{c: client}}
			c := New(client, scope, nil, Options{})
			client.ClearActions()
			if _, err := c.sync(context.Background(), "team/wf"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			for _, a := range client.Actions() {
				if a.GetVerb() != "get" {
					t.Fatalf("the round made a %s", a.GetVerb())
				}
			}
			if !tc.fenced {
				if len(scope.fenced) != 0 {
					t.Fatalf("fenced at epoch %d (the replica's is 3): %v", tc.epoch, scope.fenced)
				}
				return
			}
			if len(scope.fenced) != 1 || scope.fenced[0] != tc.epoch || scope.ns[0] != "team" {
				t.Fatalf("Fenced calls %v %v, want one for team at %d", scope.ns, scope.fenced, tc.epoch)
			}
		})
	}
}
