package executor

import (
	"testing"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// freePlugin is a plugin whose attempts run no pod (as http's).
type freePlugin struct{ *fakePlugin }

func (freePlugin) Type() string      { return "http" }
func (freePlugin) ClusterFree() bool { return true }

// TestCleanupOfClusterFreeAttempts: a deleted workflow's http attempts
// hold nothing in a target, so none is reported left behind (the soak
// found every finished call reported as a pod on a cluster "no longer
// registered"); one still running is aborted (its cancel URL), a finished
// one is not.
func TestCleanupOfClusterFreeAttempts(t *testing.T) {
	fp := newFake()
	e := &Executor{Plugins: plugins.NewRegistry(freePlugin{fp}), Clusters: oneCluster{&plugins.Cluster{Name: "c1"}}}
	wf := &v1alpha1.Workflow{}
	wf.Name, wf.Namespace, wf.UID = "wf", "ns", "uid-1"
	wf.Status.Nodes = map[string]v1alpha1.NodeStatus{
		"done": {Type: "http", Phase: v1alpha1.NodeSucceeded, Attempts: []v1alpha1.Attempt{{Number: 0, Pod: "http", Phase: v1alpha1.NodeSucceeded}}},
		"busy": {Type: "http", Phase: v1alpha1.NodeRunning, Attempts: []v1alpha1.Attempt{{Number: 0, Pod: "http", Phase: v1alpha1.NodeRunning, State: `{"cancelURL":"x"}`}}},
	}
	rep, err := e.Cleanup(t.Context(), wf, CleanupPolicy{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LeftBehind) != 0 || len(rep.Waiting) != 0 {
		t.Fatalf("report %+v: want nothing left behind or waited for", rep)
	}
	if fp.aborted["busy"] != 1 || fp.aborted["done"] != 0 {
		t.Fatalf("aborted %v: want the running call aborted once and the finished one not", fp.aborted)
	}
}
