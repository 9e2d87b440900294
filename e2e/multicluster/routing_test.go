// Package multicluster tests the placement of task attempts over three
// kwok target clusters: label routing, tenant restrictions, capacity,
// failover groups, cordons, and clusters with broken credentials.
package multicluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/cluster"
	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

func newEnv(t *testing.T) *harness.Env {
	return harness.New(t, harness.Options{Targets: 3, Runtime: localcluster.RuntimeKwok, Replicas: 1})
}

// editCluster changes a Cluster object (retrying on conflicts: the prober
// writes its status) and waits until the propeller could have seen it.
func editCluster(t *testing.T, env *harness.Env, name string, edit func(*v1alpha1.Cluster)) {
	t.Helper()
	if err := env.EditCluster(context.Background(), name, edit); err != nil {
		t.Fatal(err)
	}
}

// fanOut is a workflow of n independent nodes of one kwok task.
func fanOut(name string, n int, duration string, taskExtra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: %s}
spec:
  tasks:
    work:
      metadata: {annotations: {sim.rotor.dev/duration: %s}}
      container: {image: busybox}
%s  nodes:
`, name, duration, taskExtra)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: n%02d, task: work}\n", i)
	}
	return b.String()
}

func submit(t *testing.T, env *harness.Env, ns, src string) *v1alpha1.Workflow {
	t.Helper()
	wf := &v1alpha1.Workflow{}
	if err := manifest.Unmarshal([]byte(src), wf); err != nil {
		t.Fatal(err)
	}
	wf.Namespace = ns
	created, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(context.Background(), wf, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

func waitSucceeded(t *testing.T, env *harness.Env, wf *v1alpha1.Workflow, timeout time.Duration) *v1alpha1.Workflow {
	t.Helper()
	got := env.WaitWorkflow(t, wf, timeout, harness.Ended)
	if got.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("workflow %s/%s: %s (%s)", wf.Namespace, wf.Name, got.Status.Phase, got.Status.Message)
	}
	return got
}

// placements counts the attempts of a workflow per cluster, from its
// status, and checks each against the pods the target apiservers hold.
func placements(t *testing.T, env *harness.Env, wf *v1alpha1.Workflow) map[string]int {
	t.Helper()
	out := map[string]int{}
	onCluster := map[string]string{}
	for _, p := range env.TaskPods(t, wf.Namespace, "") {
		if prev, dup := onCluster[p.Name]; dup {
			t.Errorf("pod %s exists in %s and in %s: an attempt ran twice", p.Name, prev, p.Cluster)
		}
		onCluster[p.Name] = p.Cluster
	}
	for id, ns := range wf.Status.Nodes {
		for _, a := range ns.Attempts {
			out[a.Cluster]++
			if got := onCluster[a.Pod]; got != a.Cluster {
				t.Errorf("node %s attempt %d: status says cluster %q, its pod %s is in %q", id, a.Number, a.Cluster, a.Pod, got)
			}
		}
	}
	return out
}

// TestLabelRouting: tasks with clusterSelector {gpu: "true"} land only on
// the clusters labelled so; a tenant restricted to one cluster never
// lands elsewhere; and a task nothing fits stays Queued with a message
// naming every cluster and why it was left out.
func TestLabelRouting(t *testing.T) {
	env := newEnv(t)
	for _, name := range []string{"target-2", "target-3"} {
		editCluster(t, env, name, func(c *v1alpha1.Cluster) { c.Labels["gpu"] = "true" })
	}
	ctx := context.Background()
	if err := env.CreateNamespaces(ctx, "ml", "east-only"); err != nil {
		t.Fatal(err)
	}
	ns, err := env.Kube.CoreV1().Namespaces().Get(ctx, "east-only", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations = map[string]string{cluster.AnnotationAllowedClusters: "target-1"}
	if _, err := env.Kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	gpu := waitSucceeded(t, env, submit(t, env, "ml", fanOut("gpu", 30, "100ms", "      clusterSelector: {gpu: \"true\"}\n")), 90*time.Second)
	got := placements(t, env, gpu)
	t.Logf("30 gpu tasks placed: %v", got)
	if got["target-1"] != 0 || got["target-2"]+got["target-3"] != 30 {
		t.Fatalf("gpu tasks placed %v, want all 30 on target-2 and target-3", got)
	}
	if got["target-2"] == 0 || got["target-3"] == 0 {
		t.Errorf("gpu tasks placed %v: two equal clusters should both get some", got)
	}

	east := waitSucceeded(t, env, submit(t, env, "east-only", fanOut("east", 20, "100ms", "")), 90*time.Second)
	if got := placements(t, env, east); got["target-1"] != 20 {
		t.Fatalf("tenant restricted to target-1: placed %v", got)
	}

	stuck := submit(t, env, "east-only", fanOut("stuck", 1, "100ms", "      clusterSelector: {gpu: \"true\"}\n"))
	stuck = env.WaitWorkflow(t, stuck, 30*time.Second, func(w *v1alpha1.Workflow) bool {
		return w.Status.Nodes["n00"].Reason == v1alpha1.ReasonNoCluster
	})
	msg := stuck.Status.Nodes["n00"].Message
	t.Logf("unplaceable task: %s: %s", stuck.Status.Nodes["n00"].Phase, msg)
	for _, want := range []string{
		"target-1: does not match the task's clusterSelector gpu=true",
		"target-2: not among the tenant's allowed clusters",
		"target-3: not among the tenant's allowed clusters",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if stuck.Status.Nodes["n00"].Phase != v1alpha1.NodeQueued || len(env.TaskPods(t, "east-only", "rotor.dev/workflow-uid="+string(stuck.UID))) != 0 {
		t.Errorf("unplaceable task: phase %s, want Queued with no pod", stuck.Status.Nodes["n00"].Phase)
	}
	// Labelling target-1 gpu lets it through.
	editCluster(t, env, "target-1", func(c *v1alpha1.Cluster) { c.Labels["gpu"] = "true" })
	waitSucceeded(t, env, stuck, 60*time.Second)
}

// TestCapacity: with maxTaskPods 5 on each of 3 clusters, 40 parallel
// tasks never put more than 5 pods at once on any cluster (sampled from
// each apiserver), and all 40 finish.
func TestCapacity(t *testing.T) {
	env := newEnv(t)
	for _, c := range env.Env.Targets {
		editCluster(t, env, c.Name, func(c *v1alpha1.Cluster) { c.Spec.Capacity.MaxTaskPods = 5 })
	}
	if err := env.CreateNamespaces(context.Background(), "batch"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the propeller's cache sees the caps
	stop := make(chan struct{})
	most := env.SampleActivePods("", stop)
	start := time.Now()
	wf := waitSucceeded(t, env, submit(t, env, "batch", fanOut("wide", 40, "1s", "")), 3*time.Minute)
	close(stop)
	sample := most()
	got := placements(t, env, wf)
	t.Logf("40 tasks of 1 s, maxTaskPods 5 × 3 clusters: done in %s, placed %v, most active pods seen %v in %v samples",
		time.Since(start).Round(time.Millisecond), got, sample.Most, sample.Samples)
	sample.Check(t, 20)
	checkCapped(t, sample, 5)
	if got["target-1"]+got["target-2"]+got["target-3"] != 40 {
		t.Errorf("placed %v, want 40 attempts", got)
	}
	if ran := succeededOn(wf); ran["target-1"]+ran["target-2"]+ran["target-3"] != 40 {
		t.Errorf("succeeded attempts %v, want one per task, 40", ran)
	}
}

// TestFailoverGroups: with target-1 in group 0 and the others in group 1,
// everything goes to target-1 while it is healthy.
func TestFailoverGroups(t *testing.T) {
	env := newEnv(t)
	for _, name := range []string{"target-2", "target-3"} {
		editCluster(t, env, name, func(c *v1alpha1.Cluster) { c.Spec.FailoverGroup = 1 })
	}
	if err := env.CreateNamespaces(context.Background(), "dr"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	wf := waitSucceeded(t, env, submit(t, env, "dr", fanOut("primary", 20, "100ms", "")), 90*time.Second)
	if got := placements(t, env, wf); got["target-1"] != 20 {
		t.Fatalf("placed %v, want all 20 on the primary target-1", got)
	}
	// A full primary spills over to the backup group.
	editCluster(t, env, "target-1", func(c *v1alpha1.Cluster) { c.Spec.Capacity.MaxTaskPods = 2 })
	time.Sleep(time.Second)
	wf = waitSucceeded(t, env, submit(t, env, "dr", fanOut("spill", 12, "2s", "")), 90*time.Second)
	got := placements(t, env, wf)
	t.Logf("primary capped at 2, 12 parallel tasks: %v", got)
	if got["target-1"] == 0 || got["target-2"]+got["target-3"] == 0 {
		t.Fatalf("placed %v, want the primary full and the rest on the backup group", got)
	}
}

// TestCordonAndBrokenCluster: a cordoned cluster (NoSchedule taint) gets
// no new attempt; a Cluster whose kubeconfig Secret is missing shows a
// condition saying so and takes no work.
func TestCordonAndBrokenCluster(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	editCluster(t, env, "target-1", func(c *v1alpha1.Cluster) {
		c.Spec.Taints = append(c.Spec.Taints, corev1.Taint{Key: "rotor.dev/cordon", Effect: corev1.TaintEffectNoSchedule})
	})
	broken := &v1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "broken", Labels: map[string]string{}},
		Spec: v1alpha1.ClusterSpec{
			KubeconfigSecretRef: &v1alpha1.SecretKeyRef{Name: "no-such-secret", Namespace: localcluster.RotorNamespace},
			Weight:              1000,
		},
	}
	if _, err := env.Rotor.RotorV1alpha1().Clusters().Create(ctx, broken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cond *metav1.Condition
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := env.Rotor.RotorV1alpha1().Clusters().Get(ctx, "broken", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		cond = meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterCredentials)
		return cond != nil, nil
	})
	if err != nil {
		t.Fatal("the broken cluster got no CredentialsValid condition")
	}
	t.Logf("broken cluster: %s=%s (%s): %s", cond.Type, cond.Status, cond.Reason, cond.Message)
	if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, `"no-such-secret" not found`) {
		t.Fatalf("condition %+v, want False naming the missing Secret", cond)
	}
	if err := env.CreateNamespaces(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	wf := waitSucceeded(t, env, submit(t, env, "team", fanOut("avoid", 20, "100ms", "")), 90*time.Second)
	got := placements(t, env, wf)
	t.Logf("target-1 cordoned, broken cluster with weight 1000: placed %v", got)
	if got["target-1"] != 0 || got["broken"] != 0 || got["target-2"]+got["target-3"] != 20 {
		t.Fatalf("placed %v, want nothing on the cordoned target-1 or on broken", got)
	}
}

// TestCapacityAcrossReplicas: the same caps with 3 sharded replicas, each
// placing the attempts of its own namespaces: through the slots in etcd,
// no cluster ever holds more than 5 task pods at once between them.
func TestCapacityAcrossReplicas(t *testing.T) {
	env := harness.New(t, harness.Options{Targets: 3, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2})
	for _, c := range env.Env.Targets {
		editCluster(t, env, c.Name, func(c *v1alpha1.Cluster) { c.Spec.Capacity.MaxTaskPods = 5 })
	}
	ctx := context.Background()
	var names []string
	for i := 0; i < 30; i++ {
		names = append(names, fmt.Sprintf("cap-%02d", i))
	}
	if err := env.CreateNamespaces(ctx, names...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // replicas watch the new namespaces and see the caps
	stop := make(chan struct{})
	most := env.SampleActivePods("", stop)
	start := time.Now()
	var wfs []*v1alpha1.Workflow
	for _, ns := range names {
		wfs = append(wfs, submit(t, env, ns, fanOut("wide", 3, "1s", "")))
	}
	placed := map[string]int{}
	for _, wf := range wfs {
		for c, n := range succeededOn(waitSucceeded(t, env, wf, 3*time.Minute)) {
			placed[c] += n
		}
	}
	close(stop)
	sample := most()
	t.Logf("90 tasks of 1 s from 30 namespaces over 3 replicas, maxTaskPods 5 × 3 clusters: done in %s, placed %v, most active pods seen %v in %v samples",
		time.Since(start).Round(time.Millisecond), placed, sample.Most, sample.Samples)
	sample.Check(t, 20)
	checkCapped(t, sample, 5)
	if placed["target-1"]+placed["target-2"]+placed["target-3"] != 90 {
		t.Errorf("succeeded attempts %v, want one per task, 90", placed)
	}
}

// checkCapped fails unless no cluster held more than capacity task pods
// at once, and at least one was seen full: the tests' loads (40 or 90
// tasks of 1 s against 15 slots) keep the slots busy, so a run that never
// filled a cluster did not exercise the cap.
func checkCapped(t *testing.T, s harness.PodSample, capacity int) {
	t.Helper()
	full := 0
	for name, n := range s.Most {
		if n > capacity {
			t.Errorf("cluster %s held %d task pods at once, cap %d", name, n, capacity)
		}
		if n == capacity {
			full++
		}
	}
	if full == 0 {
		t.Errorf("no cluster was ever seen at its cap of %d (most %v): the load did not reach the cap", capacity, s.Most)
	}
}
