package multicluster

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestPodOnASecondClusterIsDeleted: an attempt's pod that shows up in a
// second target, beside the one the status records (what a round whose
// status write was lost leaves when that target was lost and came back),
// is deleted there, and only there, while the recorded attempt runs on.
// The copy is made by hand here: the real sequence needs a replica to die
// between creating a pod and writing the status, on a target that then
// stays silent past its grace period (the chaos soak's ground).
func TestPodOnASecondClusterIsDeleted(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 2, Runtime: localcluster.RuntimeKwok, Replicas: 1})
	ctx := context.Background()
	if err := env.CreateNamespaces(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	wf := submit(t, env, "team", fanOut("stray", 1, "40s", ""))
	var a v1alpha1.Attempt
	got := env.WaitWorkflow(t, wf, time.Minute, func(w *v1alpha1.Workflow) bool {
		at := w.Status.Nodes["n00"].Attempts
		if len(at) == 1 && at[0].Pod != "" && at[0].Phase == v1alpha1.NodeRunning {
			a = at[0]
			return true
		}
		return false
	})
	other := "target-1"
	if a.Cluster == other {
		other = "target-2"
	}
	orig, err := env.Target(a.Cluster).CoreV1().Pods("team").Get(ctx, a.Pod, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the recorded pod %s on %s: %v", a.Pod, a.Cluster, err)
	}
	// The propeller creates a tenant's namespace in a target when it first
	// places a pod there.
	if _, err := env.Target(other).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace team on %s: %v", other, err)
	}
	cp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: orig.Name, Namespace: orig.Namespace,
		Labels: orig.Labels, Annotations: orig.Annotations}, Spec: orig.Spec}
	cp.Spec.NodeName = ""
	copied, err := env.Target(other).CoreV1().Pods("team").Create(ctx, cp, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create the copy on %s: %v", other, err)
	}
	made := time.Now()
	t.Logf("attempt 0 of n00 recorded on %s (pod %s); copy created on %s", a.Cluster, a.Pod, other)

	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := env.Target(other).CoreV1().Pods("team").Get(ctx, cp.Name, metav1.GetOptions{})
		return isNotFound(err) || (err == nil && (p.UID != copied.UID || p.DeletionTimestamp != nil)), nil
	})
	if err != nil {
		env.Report(t)
		t.Fatalf("the copy on %s is still there (not being deleted) 15s after it was made", other)
	}
	t.Logf("copy on %s deleted %s after it was made", other, time.Since(made).Round(time.Millisecond))
	if p, err := env.Target(a.Cluster).CoreV1().Pods("team").Get(ctx, a.Pod, metav1.GetOptions{}); err != nil || p.UID != orig.UID || p.DeletionTimestamp != nil {
		t.Fatalf("the recorded pod on %s after the copy's deletion: %v (deleting: %v); want it untouched", a.Cluster, err, err == nil && p.DeletionTimestamp != nil)
	}
	got = env.WaitWorkflow(t, got, 10*time.Second, func(w *v1alpha1.Workflow) bool { return len(w.Status.Orphans) == 0 })
	if at := got.Status.Nodes["n00"].Attempts; len(at) != 1 || at[0].Cluster != a.Cluster {
		t.Fatalf("attempts %+v after the copy's deletion, want the one attempt on %s", at, a.Cluster)
	}
}
