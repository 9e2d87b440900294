package sharding

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// TestScopedPodWatchesAcrossHandoffs: each sharded replica watches the
// task pods of its own namespaces only, and a partition that moves while
// its tasks run misses no pod event. 24 namespaces each run a chain of 12
// one-second tasks over 2 targets while a third replica joins and then
// leaves (SIGTERM). Checked:
//   - after each move settles, every replica runs exactly one pod watch
//     per target for each namespace the map gives it (rotor_cluster_pod_watches);
//   - every workflow succeeds, every attempt had exactly one pod (one
//     name, one UID, one target; a round that missed its pod would place
//     the attempt again);
//   - no workflow went 3 × the lease TTL without a status write (a missed
//     pod completion would leave it waiting for the 30 s resync), and at
//     least one workflow was written on both sides of a move.
func TestScopedPodWatchesAcrossHandoffs(t *testing.T) {
	const (
		ttl        = 3 * time.Second
		namespaces = 24
		steps      = 12
	)
	opts := localcluster.ShardingOptions{LeaseTTL: ttl}
	env := harness.New(t, harness.Options{Targets: 2, Runtime: localcluster.RuntimeKwok, Replicas: 2, Sharded: true, Managers: 1, Sharding: opts})
	two := waitStableMap(t, env, 2)
	pods, err := env.RecordTaskPods(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pods.Stop()
	nss := env.SubmitIn(t, sequence("NAME", steps, "1s"), "pw", namespaces, 1)
	checkPodWatches(t, env, two, nss)

	time.Sleep(3 * time.Second) // every chain has a pod running
	upAt := time.Now()
	third, err := env.StartShardedPropeller(2, opts)
	if err != nil {
		t.Fatal(err)
	}
	three := waitStableMap(t, env, 3)
	checkPodWatches(t, env, three, nss)
	time.Sleep(3 * time.Second)
	downAt := time.Now()
	if err := third.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	back := waitStableMap(t, env, 2)
	checkPodWatches(t, env, back, nss)
	t.Logf("moves: 2 → 3 at +0 s, 3 → 2 at +%s", downAt.Sub(upAt).Round(time.Millisecond))

	items := env.WaitWorkflows(t, namespaces, 5*time.Minute)
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
		}
	}

	// One pod per attempt.
	pods.Stop()
	dups, attempts, _ := pods.Result()
	if want := namespaces * steps; attempts != want {
		t.Errorf("task pods of %d attempts seen in the targets, want %d (one per attempt)", attempts, want)
	}
	for _, d := range dups {
		t.Errorf("an attempt had more than one pod: %s", d)
	}

	// No stall, and the moves did reach running workflows.
	time.Sleep(2 * time.Second) // the audit log is flushed in batches
	writers := statusWriters(t, env.Control.AuditLog)
	moved, worst, worstKey := 0, time.Duration(0), ""
	for _, wf := range items {
		key := wf.Namespace + "/" + wf.Name
		ws := writers[key]
		if len(ws) == 0 {
			t.Errorf("%s: no status write in the audit log", key)
			continue
		}
		users := map[string]bool{}
		for i, w := range ws {
			users[w.User] = true
			if i > 0 {
				if gap := w.At.Sub(ws[i-1].At); gap > worst {
					worst, worstKey = gap, key
				}
			}
		}
		if len(users) > 1 {
			moved++
		}
	}
	t.Logf("%d of %d workflows written by more than one replica; longest gap between status writes %s (%s)", moved, len(items), worst.Round(time.Millisecond), worstKey)
	if moved == 0 {
		t.Error("no workflow was written on both sides of a move: the handoff of running work was not exercised")
	}
	if worst > 3*ttl {
		t.Errorf("%s went %s without a status write, over 3 × the lease TTL: a pod event was missed across a handoff", worstKey, worst.Round(time.Millisecond))
	}
}

// checkPodWatches waits until every replica in doc runs, in each target,
// one pod watch per namespace of the control cluster the map gives it
// (the tenants' nss and the system ones), and exactly that.
func checkPodWatches(t *testing.T, env *harness.Env, doc *shardproto.Doc, nss []string) {
	t.Helper()
	all, err := env.Kube.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, tenants := map[string]int{}, map[string]int{}
	for _, p := range doc.Map {
		want[p.Owner] += 0
	}
	for _, ns := range all.Items {
		want[doc.Map[shardproto.PartitionOf(ns.Name, len(doc.Map))].Owner]++
	}
	for _, ns := range nss {
		tenants[doc.Map[shardproto.PartitionOf(ns, len(doc.Map))].Owner]++
	}
	if len(all.Items) < len(nss) {
		t.Fatalf("%d namespaces in the control cluster, fewer than the %d tenants", len(all.Items), len(nss))
	}
	series := regexp.MustCompile(`(?m)^rotor_cluster_pod_watches\{cluster="([^"]+)"\} (\d+)$`)
	for replica, n := range want {
		addr, err := env.MetricsAddr(replica)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			code, body := httpGet("http://" + addr + "/metrics")
			if code != http.StatusOK {
				return false, nil
			}
			got = map[string]int{}
			for _, m := range series.FindAllStringSubmatch(body, -1) {
				got[m[1]], _ = strconv.Atoi(m[2])
			}
			return len(got) == 2 && got["target-1"] == n && got["target-2"] == n, nil
		})
		if err != nil {
			t.Fatalf("%s: pod watches per target %v after 30 s, want %d in each of target-1 and target-2 (the namespaces the map gives it)", replica, got, n)
		}
	}
	t.Logf("pod watches per replica and target: %v (tenant namespaces: %v)", want, tenants)
}
