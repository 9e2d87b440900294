package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// TestPickWaitsForATargetThatNeverListedTheNamespace: a replica that took
// a namespace over while target a was unreachable cannot see whether the
// previous owner created an attempt's pod there. The attempt waits until
// a has listed the namespace, or until a is lost; with a listed, it goes
// wherever placement says.
func TestPickWaitsForATargetThatNeverListedTheNamespace(t *testing.T) {
	r, _, now := testRegistry(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	down := fake.NewClientset()
	down.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	a := r.entries["a"]
	a.pods = newPodSource(ctx, down, cache.ResourceEventHandlerFuncs{}, []string{"team"})
	a.unreachableSince, a.grace = *now, 30*time.Second
	a.view.Ready, a.view.NotReady = false, "Unreachable" // as the prober writes it
	// b does not take it either: a may hold its pod.
	for i := 0; i < 3; i++ {
		if c, err := r.Pick(attempt("n0"), nil, nil); err == nil || !strings.Contains(err.Error(), "cluster a has not listed the pods of namespace team") {
			t.Fatalf("placing n0 with a never listed: %v, %v; want it to wait for a", c, err)
		}
	}
	if !r.Launched(attempt("n0")) {
		t.Fatal("Launched said no for an attempt whose pod may be on a: a cache hit would leave that pod unrecorded")
	}
	// a lost: what it holds is abandoned, the attempt moves.
	*now = now.Add(30 * time.Second)
	if c, err := r.Pick(attempt("n0"), nil, nil); err != nil || c.Name != "b" {
		t.Fatalf("a lost: %v, %v; want n0 placed on b", c, err)
	}

	// A target that lists the namespace holds nothing up.
	r, _, _ = testRegistry(t, 0)
	up := fake.NewClientset()
	r.entries["a"].pods = newPodSource(ctx, up, cache.ResourceEventHandlerFuncs{}, []string{"team"})
	deadline := time.Now().Add(10 * time.Second)
	for !r.entries["a"].pods.nsSynced("team") {
		if time.Now().After(deadline) {
			t.Fatal("the pod cache of a reachable fake target did not sync within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, err := r.Pick(attempt("n0"), nil, nil); err != nil || c == nil {
		t.Fatalf("a listed: %v, %v; want n0 placed", c, err)
	}
}

// TestAReplicaJustStartedWaitsForTargetsStillConnecting: a sharded
// replica that has just started has no client for a target whose first
// cache is still listing. Its namespaces' rounds must not run as if that
// target held no pods (the chaos soak found an attempt placed on
// target-2 10 ms before target-1, where the previous owner had created
// its pod, was registered), unless the prober finds it unreachable.
func TestAReplicaJustStartedWaitsForTargetsStillConnecting(t *testing.T) {
	r, _, now := testRegistry(t, 0)
	r.ScopePods()
	r.watched["team"] = true
	a := r.entries["a"]
	a.cluster, a.next = nil, &build{}
	if r.PodsSynced("team") {
		t.Fatal("PodsSynced with target a still connecting: want false")
	}
	a.unreachableSince, a.grace = *now, 30*time.Second
	if !r.PodsSynced("team") {
		t.Fatal("PodsSynced held up by an unreachable target: failover would stall")
	}
	// No client and nothing being built (credentials refused): not waited for.
	a.unreachableSince, a.next = time.Time{}, nil
	if !r.PodsSynced("team") {
		t.Fatal("PodsSynced held up by a target whose credentials do not work")
	}
}
