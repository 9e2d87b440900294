package cluster

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

func TestQuotaAdmit(t *testing.T) {
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	nss := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	_ = nss.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "capped", Annotations: map[string]string{AnnotationMaxRunningPods: "2"}}})
	_ = nss.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "free"}})
	r := NewRegistry(nil, "rotor-system", func(string, *corev1.Pod) {}, slog.Default())
	r.entries["c1"] = &entry{cluster: &plugins.Cluster{Name: "c1", Pods: corelisters.NewPodLister(pods)}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := NewQuota(r, corelisters.NewNamespaceLister(nss), func() time.Time { return now })
	id := func(ns string, i int) plugins.TaskID {
		return plugins.TaskID{Namespace: ns, Workflow: "wf", WorkflowUID: "u", Node: fmt.Sprintf("n%d", i)}
	}
	setPod := func(i int, phase corev1.PodPhase) {
		_ = pods.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name(id("capped", i)), Namespace: "capped"}, Status: corev1.PodStatus{Phase: phase}})
	}
	if ok, _ := q.Admit(id("capped", 0)); !ok {
		t.Fatal("first attempt refused under a cap of 2")
	}
	if ok, _ := q.Admit(id("capped", 1)); !ok {
		t.Fatal("second attempt refused under a cap of 2")
	}
	ok, why := q.Admit(id("capped", 2))
	if ok || !strings.Contains(why, "has 2 task pods in flight, its cap") {
		t.Fatalf("third attempt: %v %q; want refused by the cap", ok, why)
	}
	if ok, _ := q.Admit(id("capped", 0)); !ok {
		t.Fatal("an admitted attempt asking again must stay admitted")
	}
	setPod(0, corev1.PodRunning)
	setPod(1, corev1.PodSucceeded)
	if ok, _ := q.Admit(id("capped", 2)); !ok {
		t.Fatal("refused though one of the two pods finished")
	}
	if ok, _ := q.Admit(id("capped", 3)); ok {
		t.Fatal("admitted a third active pod")
	}
	now = now.Add(pendingTTL + time.Second) // pod 2 never appeared
	if ok, _ := q.Admit(id("capped", 3)); !ok {
		t.Fatal("a launch that never showed up still counts after its TTL")
	}
	for i := 0; i < 10; i++ {
		if ok, _ := q.Admit(id("free", i)); !ok {
			t.Fatal("a namespace without a cap was refused")
		}
	}
}
