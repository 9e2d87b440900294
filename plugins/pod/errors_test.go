package pod

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// handleWith runs Handle for a fresh attempt on a target whose pod creates
// fail with createErr (nil: they succeed) and whose cache holds cached.
func handleWith(t *testing.T, createErr error, cached ...*corev1.Pod) (plugins.PhaseInfo, error) {
	t.Helper()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return createErr != nil, nil, createErr
	})
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range cached {
		_ = idx.Add(p)
	}
	tc := &plugins.TaskContext{
		ID:      plugins.TaskID{Namespace: "team", Workflow: "wf", WorkflowUID: "uid-1", Node: "a"},
		Task:    &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}},
		Cluster: &plugins.Cluster{Name: "east", Client: cs, Pods: corelisters.NewPodLister(idx)},
	}
	return New(Config{}).Handle(context.Background(), tc)
}

// TestRefusalsThatCannotPassArePermanent: a pod the target refuses as
// invalid or forbidden by policy, or a pod of that name owned by another
// workflow, is a permanent error (the attempt ends with the reason), while
// a quota refusal, a terminating namespace or a timeout are retried.
func TestRefusalsThatCannotPassArePermanent(t *testing.T) {
	gr := corev1.Resource("pods")
	for _, tc := range []struct {
		name   string
		err    error
		reason string // "" : not permanent
	}{
		{"invalid", apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Pod").GroupKind(), "wf-a-0",
			field.ErrorList{field.Invalid(field.NewPath("spec", "containers"), "x", "bad")}), "PodRejected"},
		{"pod security", apierrors.NewForbidden(gr, "wf-a-0", errString(`violates PodSecurity "restricted:latest": privileged`)), "PodRejected"},
		{"rbac", apierrors.NewForbidden(gr, "", errString(`User "rotor" cannot create resource "pods" in the namespace "team"`)), "PodRejected"},
		{"quota", apierrors.NewForbidden(gr, "wf-a-0", errString(`exceeded quota: team-quota, requested: pods=1, used: pods=10, limited: pods=10`)), ""},
		{"terminating namespace", apierrors.NewForbidden(gr, "wf-a-0", errString(`unable to create new content in namespace team because it is being terminated`)), ""},
		{"timeout", apierrors.NewServerTimeout(gr, "create", 1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := handleWith(t, tc.err)
			if err == nil {
				t.Fatal("Handle returned no error")
			}
			perm, ok := plugins.AsPermanent(err)
			switch {
			case tc.reason == "" && ok:
				t.Fatalf("%v is permanent (%s), want it retried", err, perm.Reason)
			case tc.reason != "" && !ok:
				t.Fatalf("%v is not permanent, want %s", err, tc.reason)
			case ok && perm.Reason != tc.reason:
				t.Fatalf("reason %s, want %s", perm.Reason, tc.reason)
			}
		})
	}
	t.Run("owned by another workflow", func(t *testing.T) {
		other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "wf-a-0", Namespace: "team", Labels: map[string]string{LabelWorkflowUID: "uid-other"}}}
		_, err := handleWith(t, nil, other)
		if perm, ok := plugins.AsPermanent(err); !ok || perm.Reason != "PodConflict" {
			t.Fatalf("Handle with the pod of another workflow in the way: %v, want a permanent PodConflict", err)
		}
	})
	t.Run("created", func(t *testing.T) {
		info, err := handleWith(t, nil)
		if err != nil || info.Phase != plugins.PhaseQueued {
			t.Fatalf("Handle on a target that accepts the pod: %+v, %v; want Queued", info, err)
		}
	})
}

type errString string

func (e errString) Error() string { return string(e) }

// TestNoPodAfterTheFenceCloses: a replica whose lease lapsed while Handle
// ran (the executor's check before the call passed) creates no pod and
// returns the fence's error, so its round ends without a write; with the
// fence open the same attempt's pod is created (the control).
func TestNoPodAfterTheFenceCloses(t *testing.T) {
	lapsed := errString("membership lease deadline passed")
	for _, closed := range []bool{false, true} {
		cs := fake.NewClientset()
		idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		tc := &plugins.TaskContext{
			ID:      plugins.TaskID{Namespace: "team", Workflow: "wf", WorkflowUID: "uid-1", Node: "a"},
			Task:    &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}},
			Cluster: &plugins.Cluster{Name: "east", Client: cs, Pods: corelisters.NewPodLister(idx)},
			Fence: func() error {
				if closed {
					return lapsed
				}
				return nil
			},
		}
		info, err := New(Config{}).Handle(context.Background(), tc)
		creates := 0
		for _, a := range cs.Actions() {
			if a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
				creates++
			}
		}
		switch {
		case !closed && (err != nil || creates != 1 || info.Reason != "PodCreated"):
			t.Fatalf("fence open: %d pod creates, %+v, %v; want the pod created", creates, info, err)
		case closed && creates != 0:
			t.Fatalf("fence closed: %d pod creates, want none", creates)
		case closed && !errors.Is(err, lapsed):
			t.Fatalf("fence closed: error %v, want the fence's", err)
		}
	}
}

type fakeHealth struct{ err error }

func (f *fakeHealth) Err(context.Context) error { return f.err }

// TestDataPodsWaitForTheStore: while the store does not answer, a data
// pod is not created and the attempt waits (Queued, WaitingForObjectStore,
// looked at again soon) instead of failing; once it answers, the pod is
// created with the agent's Secret beside it, and the Secret is read once
// for several pods (GETs counted). A pod without the agent never asks.
func TestDataPodsWaitForTheStore(t *testing.T) {
	cs := fake.NewClientset()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	health := &fakeHealth{err: errString("dial tcp 127.0.0.1:9: connection refused")}
	cfg := *dataCfg
	cfg.Health = health
	p := New(Config{Data: &cfg})
	file := json.RawMessage(`{"uri": "s3://raw/p/team/wf/u1/a/0/outputs/table", "size": 3, "sha256": "` + sum + `"}`)
	tcFor := func(node string) *plugins.TaskContext {
		tc := dataTask(file)
		tc.ID.Node = node
		tc.Cluster = &plugins.Cluster{Name: "east", Client: cs, Pods: corelisters.NewPodLister(idx)}
		return tc
	}
	info, err := p.Handle(context.Background(), tcFor("b"))
	if err != nil || info.Phase != plugins.PhaseQueued || info.Reason != ReasonWaitingForStore || info.CheckAfter <= 0 || !strings.Contains(info.Message, "connection refused") {
		t.Fatalf("store down: %+v, %v; want Queued, %s, a recheck, and why", info, err, ReasonWaitingForStore)
	}
	if pods, _ := cs.CoreV1().Pods("team").List(context.Background(), metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Fatalf("%d pods created while the store was down", len(pods.Items))
	}
	health.err = nil
	for _, node := range []string{"b", "c", "d"} {
		if info, err := p.Handle(context.Background(), tcFor(node)); err != nil || info.Reason != "PodCreated" {
			t.Fatalf("store back, node %s: %+v, %v", node, info, err)
		}
	}
	gets := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == "get" && a.GetResource().Resource == "secrets" {
			gets++
		}
	}
	if pods, _ := cs.CoreV1().Pods("team").List(context.Background(), metav1.ListOptions{}); len(pods.Items) != 3 || gets != 1 {
		t.Fatalf("%d pods and %d GETs of the agent's Secret; want 3 pods and 1 GET", len(pods.Items), gets)
	}
	if _, err := cs.CoreV1().Secrets("team").Get(context.Background(), DataSecretName, metav1.GetOptions{}); err != nil {
		t.Fatalf("the agent's Secret: %v", err)
	}
	// Not a data pod: the store's health is not its business.
	health.err = errString("down again")
	plain := &plugins.TaskContext{ID: plugins.TaskID{Namespace: "team", Workflow: "wf", WorkflowUID: "u1", Node: "e"},
		Task:    &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}},
		Cluster: &plugins.Cluster{Name: "east", Client: cs, Pods: corelisters.NewPodLister(idx)}}
	if info, err := p.Handle(context.Background(), plain); err != nil || info.Reason != "PodCreated" {
		t.Fatalf("a pod without the agent while the store is down: %+v, %v", info, err)
	}
}
