package sharding

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// TestScaleUpAndDown scales 3 → 4 → 3 replicas under load: partitions move
// gracefully each time (the 4th replica leaves with SIGTERM, draining
// first: no takeover, each handoff's pause under the lease TTL), no more
// than a quarter above the minimum, and the pause of each moved workflow —
// last write by the old owner to first write by the new one, from the
// audit log — is measured, seen at least once, and bounded.
func TestScaleUpAndDown(t *testing.T) {
	const ttl = 3 * time.Second
	opts := localcluster.ShardingOptions{LeaseTTL: ttl}
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2, Sharding: opts})
	three := waitStableMap(t, env, 3)
	ctx := context.Background()
	// A steady load: 40 namespaces, each with a workflow of 40 sequential
	// 250 ms tasks, running through both moves.
	for n := 0; n < 40; n++ {
		ns := fmt.Sprintf("tenant-%02d", n)
		if err := env.CreateNamespaces(ctx, ns); err != nil {
			t.Fatal(err)
		}
		wf := &v1alpha1.Workflow{}
		if err := manifest.Unmarshal([]byte(sequence("long", 40, "250ms")), wf); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	handoffs := harness.RecordHandoffs(env.Etcd(t))
	upAt := time.Now()
	fourth, err := env.StartShardedPropeller(3, opts)
	if err != nil {
		t.Fatal(err)
	}
	four := waitStableMap(t, env, 4)
	upMoved := movedParts(three, four)
	t.Logf("3 → 4: %d of %d partitions moved (minimum: the new replica's %d), stable after %s", len(upMoved), len(four.Map), countOwner(four, "rotor-propeller-3"), time.Since(upAt).Round(time.Millisecond))
	checkMovement(t, "3 → 4", len(upMoved), countOwner(four, "rotor-propeller-3"), len(four.Map)/4)
	time.Sleep(3 * time.Second)
	downAt := time.Now()
	if err := fourth.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	back := waitStableMap(t, env, 3)
	downMoved := movedParts(four, back)
	t.Logf("4 → 3 (SIGTERM, drain): %d partitions moved (minimum: the leaver's %d), stable after %s", len(downMoved), countOwner(four, "rotor-propeller-3"), time.Since(downAt).Round(time.Millisecond))
	checkMovement(t, "4 → 3", len(downMoved), countOwner(four, "rotor-propeller-3"), len(four.Map)/4)
	if left := countOwner(back, "rotor-propeller-3"); left != 0 {
		t.Errorf("the leaver still owns %d partitions", left)
	}
	pauses, takeovers := handoffs.Stop()
	slices.Sort(pauses)
	if len(pauses) == 0 {
		t.Fatalf("no graceful handoff seen in the shard map's history (%d takeovers)", takeovers)
	}
	t.Logf("handoffs: %d graceful (pause p50 %s, max %s), %d taken over", len(pauses), pauses[len(pauses)/2], pauses[len(pauses)-1], takeovers)
	if takeovers != 0 {
		t.Errorf("%d partitions were taken over on a lease expiry: the moves were not graceful", takeovers)
	}
	if want := len(upMoved) + len(downMoved); len(pauses) != want {
		t.Errorf("%d graceful handoffs seen, want %d (every move)", len(pauses), want)
	}
	if pauses[len(pauses)-1] >= ttl {
		t.Errorf("a graceful handoff paused its partition %s, not under the lease TTL %s", pauses[len(pauses)-1], ttl)
	}
	if exited, _ := fourth.Exited(); !exited {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if exited, _ = fourth.Exited(); exited {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !exited {
			t.Error("the drained replica did not exit")
		}
	}
	items := env.WaitWorkflows(t, 40, 5*time.Minute)
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
		}
	}
	time.Sleep(2 * time.Second)
	writers := statusWriters(t, env.Control.AuditLog)
	measured := 0
	for _, phase := range []struct {
		name          string
		moved         map[int][2]string
		after, before time.Time
	}{{"3 → 4", upMoved, upAt, downAt}, {"4 → 3", downMoved, downAt, time.Now()}} {
		var pauses []time.Duration
		for key, ws := range writers {
			ns := strings.SplitN(key, "/", 2)[0]
			mv, ok := phase.moved[shardproto.PartitionOf(ns, len(four.Map))]
			if !ok {
				continue
			}
			var lastOld, firstNew time.Time
			for _, w := range ws {
				if w.At.Before(phase.after) || w.At.After(phase.before) {
					continue
				}
				if w.User == mv[0] && firstNew.IsZero() {
					lastOld = w.At
				}
				if w.User == mv[1] && firstNew.IsZero() {
					firstNew = w.At
				}
				if w.User == mv[0] && !firstNew.IsZero() {
					t.Errorf("%s: %s wrote %s after the new owner %s did", phase.name, mv[0], key, mv[1])
				}
			}
			if !lastOld.IsZero() && !firstNew.IsZero() {
				pauses = append(pauses, firstNew.Sub(lastOld))
			}
		}
		sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
		measured += len(pauses)
		if len(pauses) == 0 {
			t.Logf("%s: no workflow was written on both sides of a move", phase.name)
			continue
		}
		t.Logf("%s: pause of moved workflows (old owner's last write → new owner's first) p50 %s, p99 %s, max %s over %d workflows",
			phase.name, pauses[len(pauses)/2].Round(time.Millisecond), pauses[len(pauses)*99/100].Round(time.Millisecond), pauses[len(pauses)-1].Round(time.Millisecond), len(pauses))
		// A workflow writes after each 250 ms task; its pause is the
		// handoff plus the new owner's cache sync and first round.
		if worst := pauses[len(pauses)-1]; worst > 3*ttl {
			t.Errorf("%s: a moved workflow went %s without a write, over 3 × the lease TTL", phase.name, worst)
		}
	}
	if measured == 0 {
		t.Error("no workflow was written on both sides of either move: the pause was not measured")
	}
}

// checkMovement: a scale step moved at least the partitions it had to,
// the newcomer's or leaver's (at least half its fair share), and at most
// a quarter more.
func checkMovement(t *testing.T, step string, moved, minimum, fair int) {
	t.Helper()
	if minimum < fair/2 {
		t.Errorf("%s: the replica that came or went held %d partitions, under half its fair share %d", step, minimum, fair)
	}
	if moved < minimum || moved > minimum+minimum/4 {
		t.Errorf("%s: %d partitions moved, want between the minimum %d and %d", step, moved, minimum, minimum+minimum/4)
	}
}

func movedParts(a, b *shardproto.Doc) map[int][2]string {
	out := map[int][2]string{}
	for p := range a.Map {
		if a.Map[p].Owner != b.Map[p].Owner {
			out[p] = [2]string{a.Map[p].Owner, b.Map[p].Owner}
		}
	}
	return out
}

func countOwner(d *shardproto.Doc, who string) int {
	n := 0
	for _, p := range d.Map {
		if p.Owner == who {
			n++
		}
	}
	return n
}
