package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/cluster/placement"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// testRegistry has clusters a and b, each with a pod cache the test fills
// by hand, and a clock it controls.
func testRegistry(t *testing.T, max int) (*Registry, map[string]cache.Indexer, *time.Time) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRegistry(nil, "rotor-system", nil, slog.Default())
	r.now = func() time.Time { return now }
	caches := map[string]cache.Indexer{}
	for _, name := range []string{"a", "b"} {
		idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		caches[name] = idx
		r.entries[name] = &entry{
			view:    viewOf(&v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterSpec{Capacity: v1alpha1.ClusterCapacity{MaxTaskPods: int32(max)}}}),
			cluster: &plugins.Cluster{Name: name, Pods: corelisters.NewPodLister(idx)},
			active:  map[string]bool{}, pending: map[string]time.Time{},
		}
	}
	return r, caches, &now
}

func attempt(node string) plugins.TaskID {
	return plugins.TaskID{Namespace: "team", Workflow: "wf", WorkflowUID: "u", Node: node}
}

// TestPickIsStickyForOneAttempt: a round whose status write was lost
// places the same attempt again; it must get the cluster it got before,
// even when that cluster is now full or another one would score higher,
// or its pod would run twice.
func TestPickIsStickyForOneAttempt(t *testing.T) {
	r, _, _ := testRegistry(t, 1)
	first, err := r.Pick(attempt("n0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The chosen cluster is now full (its one slot is this attempt).
	for i := 0; i < 5; i++ {
		again, err := r.Pick(attempt("n0"), nil, nil)
		if err != nil || again.Name != first.Name {
			t.Fatalf("placing the same attempt again gave %v, %v; want %s", again, err, first.Name)
		}
	}
	other, err := r.Pick(attempt("n1"), nil, nil)
	if err != nil || other.Name == first.Name {
		t.Fatalf("second attempt: %v, %v; want the other cluster (cap 1)", other, err)
	}
	_, err = r.Pick(attempt("n2"), nil, nil)
	var nf *placement.NoFit
	if !errors.As(err, &nf) || !nf.OnlyFull() {
		t.Fatalf("third attempt with both clusters full: %v, want a NoFit for capacity", err)
	}
}

// TestPickFindsAPodPlacedByAnotherReplica: an attempt whose pod is already
// in a cluster (created by the partition's previous owner) stays there.
func TestPickFindsAPodPlacedByAnotherReplica(t *testing.T) {
	r, caches, _ := testRegistry(t, 0)
	for _, want := range []string{"a", "b"} {
		id := attempt("from-" + want)
		_ = caches[want].Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name(id), Namespace: "team"}})
		got, err := r.Pick(id, nil, nil)
		if err != nil || got.Name != want {
			t.Fatalf("pod of %s is in %s; Pick gave %v, %v", id.Node, want, got, err)
		}
	}
}

// TestInFlightCountsPendingUntilSeen: a placed attempt counts against
// capacity until its pod shows up in the cache, then the cache counts it,
// and a finished pod no longer counts; a pod never seen stops counting
// after pendingTTL.
func TestInFlightCountsPendingUntilSeen(t *testing.T) {
	r, _, now := testRegistry(t, 10)
	c, err := r.Pick(attempt("n0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.inFlight(c.Name); n != 1 {
		t.Fatalf("in flight after placing: %d, want 1", n)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name(attempt("n0")), Namespace: "team"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	r.podChanged(c.Name, p, false)
	if n := r.inFlight(c.Name); n != 1 {
		t.Fatalf("in flight once the cache shows it running: %d, want 1", n)
	}
	p.Status.Phase = corev1.PodSucceeded
	r.podChanged(c.Name, p, false)
	if n := r.inFlight(c.Name); n != 0 {
		t.Fatalf("in flight after it succeeded: %d, want 0", n)
	}
	c2, _ := r.Pick(attempt("lost"), nil, nil)
	*now = now.Add(pendingTTL + time.Second)
	if n := r.inFlight(c2.Name); n != 0 {
		t.Fatalf("a placement never seen still counts after pendingTTL: %d", n)
	}
	// It no longer counts, but is still where the attempt goes: its
	// create may have reached the target with the answer lost.
	for i := range 3 { // other attempts placed meanwhile
		_, _ = r.Pick(attempt(fmt.Sprintf("other-%d", i)), nil, nil)
		*now = now.Add(time.Minute)
	}
	for i := range 10 { // and its cluster now full: placement would pick the other
		r.entries[c2.Name].active[fmt.Sprintf("team/full-%d", i)] = true
	}
	again, err := r.Pick(attempt("lost"), nil, nil)
	if err != nil || again.Name != c2.Name {
		t.Fatalf("the attempt placed on %s %s ago, never seen, was placed again on %v (%v): it could run twice",
			c2.Name, pendingTTL+3*time.Minute+time.Second, again, err)
	}
	*now = now.Add(placedTTL)
	_ = r.inFlight(c2.Name)
	if _, ok := r.entries[c2.Name].pending["team/"+pod.Name(attempt("lost"))]; ok {
		t.Fatalf("a placement never seen is still remembered after placedTTL")
	}
}

// TestBrokenClusterIsListedNotReady: a cluster whose client could not be
// built stays in placement's view, not ready, with the reason.
func TestBrokenClusterIsListedNotReady(t *testing.T) {
	r, _, _ := testRegistry(t, 0)
	r.Remove("b")
	r.entries["broken"] = &entry{view: viewOf(&v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "broken"}}), active: map[string]bool{}, pending: map[string]time.Time{}}
	r.setBroken("broken", errors.New(`read kubeconfig Secret rotor-system/x: secrets "x" not found`))
	r.Remove("a")
	_, err := r.Pick(attempt("n0"), nil, nil)
	if err == nil || err.Error() != `no target cluster fits: broken: not ready: credentials: read kubeconfig Secret rotor-system/x: secrets "x" not found` {
		t.Fatalf("Pick: %v", err)
	}
}

// TestDeclaredClusterIsKnownWithoutClient: a declared Cluster is known
// (its attempts wait) but has no client and takes no new attempt until
// Sync built one.
func TestDeclaredClusterIsKnownWithoutClient(t *testing.T) {
	r, _, _ := testRegistry(t, 0)
	r.Declare([]*v1alpha1.Cluster{{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, {ObjectMeta: metav1.ObjectMeta{Name: "a"}}})
	if h := r.Health("c"); !h.Known || !h.Unreachable {
		t.Fatalf("health of declared c: %+v, want known and unreachable (no client)", h)
	}
	if _, ok := r.Get("c"); ok {
		t.Fatal("declared c has a client before any Sync")
	}
	if _, ok := r.Get("a"); !ok {
		t.Fatal("declaring a again dropped the client it had")
	}
	for i := 0; i < 20; i++ {
		c, err := r.Pick(attempt(fmt.Sprintf("n%d", i)), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name == "c" {
			t.Fatal("an attempt was placed on c, which has no client")
		}
	}
}

// TestPickWaitsForAClusterThatLostItsClient: an attempt placed here whose
// cluster lost its client before the pod showed in its cache is not
// placed again elsewhere (its pod may be there); other attempts are.
func TestPickWaitsForAClusterThatLostItsClient(t *testing.T) {
	r, _, _ := testRegistry(t, 0)
	first, err := r.Pick(attempt("n0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.setBroken(first.Name, errors.New("kubeconfig unusable"))
	if c, err := r.Pick(attempt("n0"), nil, nil); err == nil || !strings.Contains(err.Error(), "has no client now") {
		t.Fatalf("placing n0 again gave %v, %v; want it to wait for %s", c, err, first.Name)
	}
	if c, err := r.Pick(attempt("n1"), nil, nil); err != nil || c.Name == first.Name {
		t.Fatalf("a new attempt: %v, %v; want the cluster that has a client", c, err)
	}
}
