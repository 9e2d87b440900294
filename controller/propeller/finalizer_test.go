package propeller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/executor"
	"github.com/rotor-dev/rotor/controller/generated/clientset/versioned/fake"
	"github.com/rotor-dev/rotor/plugins"
)

// deleter is a pod plugin that records which pods it deleted, and fails
// (as a client to a silent apiserver would) on the clusters in down.
type deleter struct {
	down    map[string]bool
	deleted []string
}

func (*deleter) Type() string { return "pod" }
func (*deleter) Handle(context.Context, *plugins.TaskContext) (plugins.PhaseInfo, error) {
	return plugins.PhaseInfo{}, nil
}
func (d *deleter) Abort(_ context.Context, tc *plugins.TaskContext) error {
	if d.down[tc.Cluster.Name] {
		return errors.New("dial tcp 10.0.0.1:6443: i/o timeout")
	}
	d.deleted = append(d.deleted, tc.ID.Node+"@"+tc.Cluster.Name)
	return nil
}
func (*deleter) Finalize(context.Context, *plugins.TaskContext) error { return nil }

// targets is a fleet whose health the test sets; clusters in clientless
// are registered but have no client yet.
type targets struct {
	health     map[string]plugins.ClusterHealth
	clientless map[string]bool
}

func (*targets) Pick(plugins.TaskID, *v1alpha1.TaskTemplate, map[string]string) (*plugins.Cluster, error) {
	return nil, errors.New("no placement in these tests")
}
func (f *targets) Get(name string) (*plugins.Cluster, bool) {
	h, ok := f.health[name]
	return &plugins.Cluster{Name: name}, ok && h.Known && !f.clientless[name]
}
func (f *targets) Health(name string) plugins.ClusterHealth { return f.health[name] }

// deletedWorkflow has a pod on east and one on west.
func deletedWorkflow(at time.Time) *v1alpha1.Workflow {
	del := metav1.NewTime(at)
	pod := func(node, cluster string) v1alpha1.NodeStatus {
		return v1alpha1.NodeStatus{Phase: v1alpha1.NodeRunning, Type: "pod",
			Attempts: []v1alpha1.Attempt{{Number: 0, Cluster: cluster, Pod: "wf-" + node + "-0", Phase: v1alpha1.NodeRunning}}}
	}
	return &v1alpha1.Workflow{
		ObjectMeta: metav1.ObjectMeta{Name: "wf", Namespace: "team", UID: "u", DeletionTimestamp: &del, Finalizers: []string{Finalizer}},
		Status: v1alpha1.WorkflowStatus{Phase: v1alpha1.WorkflowRunning,
			Nodes: map[string]v1alpha1.NodeStatus{"a": pod("a", "east"), "b": pod("b", "west")}},
	}
}

type finalizerRig struct {
	c      *Controller
	client *fake.Clientset
	plugin *deleter
	fleet  *targets
	events *record.FakeRecorder
	now    time.Time
}

func newFinalizerRig(t *testing.T, down time.Time) *finalizerRig {
	t.Helper()
	r := &finalizerRig{plugin: &deleter{down: map[string]bool{"east": true}}, events: record.NewFakeRecorder(10), now: down.Add(time.Minute)}
	r.fleet = &targets{health: map[string]plugins.ClusterHealth{
		"east": {Known: true, Unreachable: true, UnreachableSince: down},
		"west": {Known: true},
	}, clientless: map[string]bool{}}
	r.client = fake.NewSimpleClientset(deletedWorkflow(down))
	exec := &executor.Executor{Plugins: plugins.NewRegistry(r.plugin), Clusters: r.fleet, Clock: clock.RealClock{}, MaxSystemRetries: 1}
	r.c = New(r.client, clientScope{r.client}, exec, Options{Events: r.events})
	r.c.now = func() time.Time { return r.now }
	return r
}

func (r *finalizerRig) round(t *testing.T) (time.Duration, *v1alpha1.Workflow) {
	t.Helper()
	after, err := r.c.sync(context.Background(), "team/wf")
	if err != nil {
		t.Fatalf("round at %s: %v", r.now.Format(time.TimeOnly), err)
	}
	wf, err := r.client.RotorV1alpha1().Workflows("team").Get(context.Background(), "wf", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return after, wf
}

func (r *finalizerRig) statusWrites() int {
	n := 0
	for _, a := range r.client.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

// TestFinalizerWaitsForAnUnreachableTargetThenGivesUp: a deleted
// workflow's pods on a reachable target are deleted at once; for those
// on an unreachable one the finalizer waits, without calling it, with a
// CleanupBlocked condition naming the cluster and since when, and no
// status write per round; once the target has been unreachable for the
// timeout (10 minutes by default) it leaves them behind, says so in an
// Event and lets the workflow go.
func TestFinalizerWaitsForAnUnreachableTargetThenGivesUp(t *testing.T) {
	down := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := newFinalizerRig(t, down)
	after, wf := r.round(t)
	if strings.Join(r.plugin.deleted, ",") != "b@west" {
		t.Fatalf("deleted %v, want only b's pod on west", r.plugin.deleted)
	}
	if len(wf.Finalizers) != 1 {
		t.Fatal("the finalizer went while east still holds a pod")
	}
	cond := meta.FindStatusCondition(wf.Status.Conditions, v1alpha1.WorkflowCleanupBlocked)
	want := "waiting to delete 1 pod on cluster east, unreachable since 2026-01-01T12:00:00Z; they are left behind at 2026-01-01T12:10:00Z"
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != v1alpha1.ReasonClusterUnreachable || cond.Message != want {
		t.Fatalf("condition %+v, want CleanupBlocked True ClusterUnreachable %q", cond, want)
	}
	if after <= 0 || after > 30*time.Second {
		t.Fatalf("looks again after %s, want within the resync", after)
	}

	r.now = r.now.Add(5 * time.Minute)
	writes := r.statusWrites()
	if _, wf = r.round(t); len(wf.Finalizers) != 1 || r.statusWrites() != writes {
		t.Fatalf("5 minutes on: finalizers %v, %d new status writes; want it waiting and no write", wf.Finalizers, r.statusWrites()-writes)
	}
	r.now = down.Add(10*time.Minute - time.Second)
	if after, _ = r.round(t); after != time.Second {
		t.Fatalf("a second before giving up it looks again after %s, want 1s", after)
	}

	r.now = down.Add(10 * time.Minute)
	if _, wf = r.round(t); len(wf.Finalizers) != 0 {
		t.Fatalf("after 10 minutes unreachable the finalizer is still there: %v", wf.Finalizers)
	}
	select {
	case e := <-r.events.Events:
		if !strings.Contains(e, "CleanupIncomplete") || !strings.Contains(e, "wf-a-0 on east (unreachable since 2026-01-01T12:00:00Z") {
			t.Fatalf("event %q, want CleanupIncomplete naming wf-a-0 on east", e)
		}
	default:
		t.Fatal("no event says what was left behind")
	}
	if strings.Contains(strings.Join(r.plugin.deleted, ","), "@east") {
		t.Fatalf("deleted %v: east was called while unreachable", r.plugin.deleted)
	}
}

// TestFinalizerDeletesOnceTheTargetAnswers: a target back before the
// timeout gets its pods deleted and the workflow goes, with nothing left
// behind.
func TestFinalizerDeletesOnceTheTargetAnswers(t *testing.T) {
	down := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := newFinalizerRig(t, down)
	r.round(t)
	r.now = down.Add(4 * time.Minute)
	r.fleet.health["east"], r.plugin.down["east"] = plugins.ClusterHealth{Known: true}, false
	if _, wf := r.round(t); len(wf.Finalizers) != 0 {
		t.Fatalf("finalizers %v after east answered", wf.Finalizers)
	}
	if !strings.Contains(strings.Join(r.plugin.deleted, ","), "a@east") {
		t.Fatalf("deleted %v, want a's pod on east too", r.plugin.deleted)
	}
	select {
	case e := <-r.events.Events:
		t.Fatalf("event %q: nothing was left behind", e)
	default:
	}
}

// TestFinalizerWaitsForAClusterWithoutClient: a registered cluster whose
// client is not built yet (a replica starting, its pod cache syncing) is
// waited for, not skipped as unregistered.
func TestFinalizerWaitsForAClusterWithoutClient(t *testing.T) {
	down := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := newFinalizerRig(t, down)
	r.fleet.health["east"] = plugins.ClusterHealth{Known: true, Unreachable: true, UnreachableSince: r.now}
	r.fleet.clientless["east"] = true
	if _, wf := r.round(t); len(wf.Finalizers) != 1 {
		t.Fatal("the finalizer went while east's client was being built")
	}
	delete(r.fleet.health, "east") // the Cluster object is deleted
	if _, wf := r.round(t); len(wf.Finalizers) != 0 {
		t.Fatalf("finalizers %v: pods on a cluster no longer registered are left behind at once", wf.Finalizers)
	}
}

// TestCleanupTimeoutOption: 0 is the default, negative waits for ever.
func TestCleanupTimeoutOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   time.Duration
		want time.Duration
	}{
		{"default", 0, DefaultCleanupUnreachableTimeout},
		{"set", time.Minute, time.Minute},
		{"for ever", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := New(nil, nil, nil, Options{CleanupUnreachableTimeout: tc.in}).cleanupGiveUp; got != tc.want {
				t.Fatalf("cleanupGiveUp %s, want %s", got, tc.want)
			}
		})
	}
}
