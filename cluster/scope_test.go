package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

func taskPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"rotor.dev/managed": "true"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "rotor-propeller"}}}}
}

// scopedRegistry is a scoped registry over one fake target, east, holding
// a running task pod in each of the namespaces team-a and team-b; events
// reaching the pod handler are sent on the returned channel.
func scopedRegistry(t *testing.T) (*Registry, *fake.Clientset, <-chan string) {
	t.Helper()
	r := connectRegistry(t, map[string]string{"east": "fake://east"})
	target := fake.NewClientset(taskPod("team-a", "pa"), taskPod("team-b", "pb"))
	r.newClient = func(*rest.Config) (kubernetes.Interface, error) { return target, nil }
	seen := make(chan string, 100)
	r.onPod = func(_ string, p *corev1.Pod) { seen <- p.Namespace + "/" + p.Name }
	r.ScopePods()
	return r, target, seen
}

// TestScopedPodCacheHoldsOnlyWatchedNamespaces: a scoped registry caches
// and reports the task pods of the namespaces it was given and no other;
// a namespace let go leaves the cache, the in-flight count and the pod
// handler.
func TestScopedPodCacheHoldsOnlyWatchedNamespaces(t *testing.T) {
	r, target, seen := scopedRegistry(t)
	r.Sync(context.Background(), clusterObj("east"))
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("east"); return ok }) {
		t.Fatal("no client for east within 3 s")
	}
	if w := r.PodWatches()["east"]; w.Informers != 0 || w.Pods != 0 {
		t.Fatalf("before any namespace is watched: %+v, want no informer and no pod", w)
	}

	r.WatchPods("team-a")
	if !waitFor(3*time.Second, func() bool { return r.PodsSynced("team-a") }) {
		t.Fatal("team-a's pods not synced within 3 s")
	}
	if got := recv(t, seen); got != "team-a/pa" {
		t.Fatalf("pod handler got %s, want team-a/pa", got)
	}
	c, _ := r.Get("east")
	p, err := c.Pods.Pods("team-a").Get("pa")
	if err != nil {
		t.Fatalf("team-a/pa not in the cache: %v", err)
	}
	if p.ManagedFields != nil {
		t.Error("cached pod keeps its managedFields")
	}
	if _, err := c.Pods.Pods("team-b").Get("pb"); !apierrors.IsNotFound(err) {
		t.Fatalf("team-b/pb: %v, want NotFound (team-b is not watched)", err)
	}
	if w := r.PodWatches()["east"]; w.Informers != 1 || w.Pods != 1 {
		t.Fatalf("watching team-a: %+v, want 1 informer and 1 pod", w)
	}
	if n := r.inFlight("east"); n != 1 {
		t.Fatalf("in flight on east: %d, want 1 (team-a/pa)", n)
	}
	// A new pod in an unwatched namespace never reaches the handler.
	if _, err := target.CoreV1().Pods("team-b").Create(context.Background(), taskPod("team-b", "pb2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := target.CoreV1().Pods("team-a").Create(context.Background(), taskPod("team-a", "pa2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, seen); got != "team-a/pa2" {
		t.Fatalf("pod handler got %s, want team-a/pa2 (team-b's pod must not arrive)", got)
	}

	r.UnwatchPods("team-a")
	if _, err := c.Pods.Pods("team-a").Get("pa"); !apierrors.IsNotFound(err) {
		t.Fatalf("team-a/pa after UnwatchPods: %v, want NotFound", err)
	}
	if n := r.inFlight("east"); n != 0 {
		t.Fatalf("in flight on east after UnwatchPods: %d, want 0", n)
	}
	if w := r.PodWatches()["east"]; w.Informers != 0 || w.Pods != 0 {
		t.Fatalf("after UnwatchPods: %+v, want nothing", w)
	}
	if _, err := target.CoreV1().Pods("team-a").Create(context.Background(), taskPod("team-a", "pa3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-seen:
		t.Fatalf("pod handler got %s after team-a was let go", got)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestScopedCacheOfANewClientHasTheWatchedNamespaces: a client built
// after namespaces were watched (a target registered later, a rotated
// Secret) is put in use only once the pods of every one of them synced.
func TestScopedCacheOfANewClientHasTheWatchedNamespaces(t *testing.T) {
	r, _, _ := scopedRegistry(t)
	var mu sync.Mutex
	gate := make(chan struct{})
	inner := r.newClient
	r.newClient = func(c *rest.Config) (kubernetes.Interface, error) {
		<-gate // hold the build until both namespaces are watched
		mu.Lock()
		defer mu.Unlock()
		return inner(c)
	}
	r.WatchPods("team-a")
	if !r.PodsSynced("team-a") {
		t.Fatal("PodsSynced false with no target connected: nothing to wait for")
	}
	r.Sync(context.Background(), clusterObj("east"))
	r.WatchPods("team-b")
	close(gate)
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("east"); return ok }) {
		t.Fatal("no client for east within 3 s")
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if !r.PodsSynced(ns) {
			t.Fatalf("%s not synced once east's cache is in use", ns)
		}
	}
	c, _ := r.Get("east")
	for _, key := range [][2]string{{"team-a", "pa"}, {"team-b", "pb"}} {
		if _, err := c.Pods.Pods(key[0]).Get(key[1]); err != nil {
			t.Fatalf("%s/%s not in the new cache: %v", key[0], key[1], err)
		}
	}
	if w := r.PodWatches()["east"]; w.Informers != 2 || w.Pods != 2 {
		t.Fatalf("east: %+v, want 2 informers and 2 pods", w)
	}
}

// TestUnscopedCacheHoldsEveryNamespace: without ScopePods (an unsharded
// propeller) one informer caches every namespace's task pods.
func TestUnscopedCacheHoldsEveryNamespace(t *testing.T) {
	r := connectRegistry(t, map[string]string{"east": "fake://east"})
	target := fake.NewClientset(taskPod("team-a", "pa"), taskPod("team-b", "pb"))
	r.newClient = func(*rest.Config) (kubernetes.Interface, error) { return target, nil }
	r.Sync(context.Background(), clusterObj("east"))
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("east"); return ok }) {
		t.Fatal("no client for east within 3 s")
	}
	if w := r.PodWatches()["east"]; w.Informers != 1 || w.Pods != 2 {
		t.Fatalf("east: %+v, want 1 informer and 2 pods", w)
	}
	if !r.PodsSynced("anything") {
		t.Fatal("an unscoped registry has every namespace synced")
	}
}
