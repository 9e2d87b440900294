package cluster

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/rotor-dev/rotor/plugins/pod"
)

// TestPodInTwoTargetsIsFound: an attempt's pod that appears in a second
// target's cache (created there by a round whose status write was lost,
// while that target was unreachable) is noticed: the workflow is
// Doubled, and Strays names the cluster that is not the recorded one.
// A pod of the same name of another workflow (another UID) is not a
// copy, and deleting the stray ends it.
func TestPodInTwoTargetsIsFound(t *testing.T) {
	r := connectRegistry(t, map[string]string{"east": "fake://east", "west": "fake://west"})
	var mu sync.Mutex
	clients := map[string]kubernetes.Interface{}
	r.newClient = func(c *rest.Config) (kubernetes.Interface, error) {
		cs := fake.NewClientset()
		mu.Lock()
		clients[strings.TrimPrefix(c.Host, "fake://")] = cs
		mu.Unlock()
		return cs, nil
	}
	seen := make(chan string, 100)
	r.onPod = func(cluster string, p *corev1.Pod) {
		seen <- cluster + ":" + p.Name + ":" + p.Labels[pod.LabelWorkflowUID] + ":" + p.ResourceVersion
	}
	for _, name := range []string{"east", "west"} {
		r.Sync(context.Background(), clusterObj(name))
	}
	for _, name := range []string{"east", "west"} {
		if !waitFor(3*time.Second, func() bool { _, ok := r.Get(name); return ok }) {
			t.Fatalf("cluster %s got no client within 3s", name)
		}
	}
	id := attempt("a")
	podOf := func(uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name(id), Namespace: id.Namespace,
			Labels: map[string]string{pod.LabelManaged: "true", pod.LabelWorkflowUID: uid}}}
	}
	create := func(cluster, uid string) {
		t.Helper()
		mu.Lock()
		cs := clients[cluster]
		mu.Unlock()
		p, err := cs.CoreV1().Pods(id.Namespace).Create(context.Background(), podOf(uid), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := cluster + ":" + pod.Name(id) + ":" + uid + ":" + p.ResourceVersion
		deadline := time.After(3 * time.Second)
		for {
			select {
			case got := <-seen:
				if got == want {
					return
				}
			case <-deadline:
				t.Fatalf("the pod created on %s did not reach the pod handler within 3s", cluster)
			}
		}
	}

	create("east", id.WorkflowUID)
	if r.Doubled(id.Namespace, id.WorkflowUID) || len(r.Strays(id, "east")) != 0 {
		t.Fatalf("one pod on east: Doubled %v, Strays %v; want neither", r.Doubled(id.Namespace, id.WorkflowUID), r.Strays(id, "east"))
	}
	if got := r.Strays(id, "west"); !slices.Equal(got, []string{"east"}) {
		t.Fatalf("Strays for an attempt recorded on west: %v, want [east]", got)
	}

	// The same name for another workflow (deleted and created again) is
	// not a copy of this attempt.
	create("west", "other-uid")
	if r.Doubled(id.Namespace, id.WorkflowUID) {
		t.Fatal("a pod of another workflow UID counted as a copy")
	}
	mu.Lock()
	west := clients["west"]
	mu.Unlock()
	if err := west.CoreV1().Pods(id.Namespace).Delete(context.Background(), pod.Name(id), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(3*time.Second, func() bool {
		c, _ := r.Get("west")
		_, err := c.Pods.Pods(id.Namespace).Get(pod.Name(id))
		return err != nil
	}) {
		t.Fatal("west's cache still holds the other workflow's pod 3s after its deletion")
	}

	create("west", id.WorkflowUID)
	if !r.Doubled(id.Namespace, id.WorkflowUID) {
		t.Fatal("the attempt's pod on east and west: not Doubled")
	}
	if got := r.Strays(id, "east"); !slices.Equal(got, []string{"west"}) {
		t.Fatalf("Strays for the attempt recorded on east: %v, want [west]", got)
	}

	if err := west.CoreV1().Pods(id.Namespace).Delete(context.Background(), pod.Name(id), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(3*time.Second, func() bool { return !r.Doubled(id.Namespace, id.WorkflowUID) }) {
		t.Fatal("still Doubled 3s after the stray was deleted")
	}
	if got := r.Strays(id, "east"); len(got) != 0 {
		t.Fatalf("Strays after the stray was deleted: %v, want none", got)
	}
}
