package chart

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

const autoscaleWorkflows = 500

// testAutoscale is the autoscaling loop on the chart: 500 active
// workflows at 100 per replica raise the manager's desired count to 5; it
// scales the StatefulSet through the scale subresource (the only apps
// permission it has); the new pods start and take partitions. When the
// load is gone the count returns to 3 after the scale-down window, and
// the removed replicas hand their partitions over on SIGTERM.
func testAutoscale(t *testing.T) {
	ctx := context.Background()
	etcd := env.Etcd(t)
	handoffs := harness.RecordHandoffs(etcd)
	start := time.Now()
	namespaces := env.SubmitIn(t, chainOf("8"), "scale", 25, autoscaleWorkflows/25)
	submitted := time.Since(start)
	waitReplicas(t, maxReplicas, 60*time.Second)
	scaled := time.Since(start)
	if _, err := harness.WaitShardMap(ctx, etcd, maxReplicas, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	serving := time.Since(start)
	if err := env.WaitRotorPods(ctx, 60*time.Second, maxReplicas); err != nil {
		t.Fatal(err)
	}
	upPauses, upTakeovers := handoffs.Stop()
	t.Logf("autoscale: %d workflows submitted in %s; StatefulSet at %d replicas %s after the first submission; every partition placed over %d replicas (the new ones serving) after %s; %d partitions handed to them (pause p50 %s, max %s), %d taken over",
		autoscaleWorkflows, submitted.Round(time.Millisecond), maxReplicas, scaled.Round(time.Millisecond), maxReplicas, serving.Round(time.Millisecond),
		len(upPauses), quantile(upPauses, 0.5).Round(time.Millisecond), quantile(upPauses, 1).Round(time.Millisecond), upTakeovers)
	if len(upPauses) == 0 || upTakeovers > 0 {
		t.Fatalf("scale-up: %d partitions handed over, %d taken over; want some handed to the new replicas and none taken over", len(upPauses), upTakeovers)
	}
	// The window keeps 5 until the load has been under 3 replicas' worth
	// for 10 s, well after this point.
	handoffs = harness.RecordHandoffs(etcd)

	wfs := waitAllEnded(t, namespaces, autoscaleWorkflows, 10*time.Minute)
	ended := time.Now()
	checkOneAttemptEach(t, wfs)
	waitReplicas(t, replicas, 2*time.Minute)
	down := time.Since(ended)
	if _, err := harness.WaitShardMap(ctx, etcd, replicas, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := waitPods(replicas, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	pauses, takeovers := handoffs.Stop()
	// The window starts when the load falls to 3 replicas' worth, which is
	// before the last workflow ends: the count may be back already.
	t.Logf("autoscale: back to %d replicas at most %s after the last workflow ended (window %s from when the load fell to %d workflows); %d partitions handed over by the removed replicas (pause p50 %s, max %s), %d taken over",
		replicas, down.Round(time.Millisecond), scaleDownWait, replicas*perReplica, len(pauses), quantile(pauses, 0.5).Round(time.Millisecond), quantile(pauses, 1).Round(time.Millisecond), takeovers)
	if len(pauses) == 0 {
		t.Fatal("no partition was handed over when the replicas were removed")
	}
	if takeovers > 0 {
		t.Fatalf("%d partitions were taken over after a lease ran out: scale-down must hand them over", takeovers)
	}
}

// waitPods waits until exactly n propeller pods exist (the removed ones
// gone, not only terminating).
func waitPods(n int, timeout time.Duration) error {
	var names []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := env.Kube.CoreV1().Pods(localcluster.RotorNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=propeller"})
		if err != nil {
			return false, nil
		}
		names = names[:0]
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return len(pods.Items) == n, nil
	})
	if err != nil {
		return fmt.Errorf("propeller pods after %s: %s; want %d", timeout, strings.Join(names, ", "), n)
	}
	return nil
}
