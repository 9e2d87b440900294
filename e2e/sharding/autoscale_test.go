package sharding

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestAutoscaleSignal: with a target of 20 active workflows per replica,
// 100 running workflows make the leader set the replicas' StatefulSet to
// 5; when they are done the count stays up for the scale-down window, then
// returns to the minimum.
func TestAutoscaleSignal(t *testing.T) {
	opts := localcluster.ShardingOptions{ManagerArgs: []string{
		"--target-workflows-per-replica=20", "--min-replicas=1", "--max-replicas=8",
		"--scale-down-window=5s", "--scale-target=statefulset/rotor-propeller",
	}}
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 2, Sharded: true, Managers: 2, Sharding: opts})
	ctx := context.Background()
	one := int32(1)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "rotor-propeller", Namespace: localcluster.RotorNamespace},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "rotor-propeller"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "rotor-propeller"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "p", Image: "rotor-propeller"}}},
			},
		},
	}
	if _, err := env.Kube.AppsV1().StatefulSets(localcluster.RotorNamespace).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitStableMap(t, env, 2)
	submitSlow(t, env, 10, 10) // 100 workflows of three 1.5 s tasks
	replicas := func() int32 {
		s, err := env.Kube.AppsV1().StatefulSets(localcluster.RotorNamespace).Get(ctx, "rotor-propeller", metav1.GetOptions{})
		if err != nil || s.Spec.Replicas == nil {
			return -1
		}
		return *s.Spec.Replicas
	}
	start := time.Now()
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return replicas() == 5, nil
	}); err != nil {
		t.Fatalf("StatefulSet replicas %d, want 5 for 100 active workflows at 20 each", replicas())
	}
	t.Logf("100 active workflows: replicas set to 5 after %s", time.Since(start).Round(time.Millisecond))

	// The window holds the count from the last sample that called for more
	// than one replica, i.e. while more than 20 workflows were active, not
	// from when the last one ended. Track that moment as the API shows it.
	var lastBusy atomic.Int64
	lastBusy.Store(time.Now().UnixNano())
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(200 * time.Millisecond):
			}
			list, err := env.Rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{})
			if err != nil {
				continue
			}
			active := 0
			for _, wf := range list.Items {
				if !wf.Status.Phase.IsTerminal() {
					active++
				}
			}
			if active > 20 {
				lastBusy.Store(time.Now().UnixNano())
			}
		}
	}()
	env.WaitWorkflows(t, 100, 3*time.Minute)
	close(stopWatch)
	<-watched
	busyUntil := time.Unix(0, lastBusy.Load())
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return replicas() == 1, nil
	}); err != nil {
		t.Fatalf("StatefulSet replicas %d after the load ended, want 1", replicas())
	}
	after := time.Since(busyUntil)
	t.Logf("load fell to one replica's worth: replicas back to 1 after %s (scale-down window 5s)", after.Round(time.Millisecond))
	// Replicas report their load every second, so the manager's last busy
	// sample may be up to 1 s older than what the API showed.
	if after < 4*time.Second {
		t.Fatalf("scaled down %s after the load fell under 20 workflows, before the 5s window", after)
	}
}
