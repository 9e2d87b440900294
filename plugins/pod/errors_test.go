package pod

import (
	"context"
	"errors"
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
