package sharding

import (
	"context"
	"fmt"
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
// first), close to the minimum, and the pause of each moved partition —
// last write by the old owner to first write by the new one, from the
// audit log — is reported.
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
		var b strings.Builder
		b.WriteString(`apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: long}
spec:
  tasks:
    step:
      inputs: {i: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/duration: 250ms, sim.rotor.dev/outputs: '{"v": 1}'}}
      container: {image: busybox}
  nodes:
  - {name: s0, task: step, inputs: {i: 0}}
`)
		for i := 1; i < 40; i++ {
			fmt.Fprintf(&b, "  - {name: s%d, task: step, inputs: {i: \"{{nodes.s%d.outputs.v}}\"}}\n", i, i-1)
		}
		wf := &v1alpha1.Workflow{}
		_ = manifest.Unmarshal([]byte(b.String()), wf)
		if _, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	upAt := time.Now()
	fourth, err := env.StartShardedPropeller(3, opts)
	if err != nil {
		t.Fatal(err)
	}
	four := waitStableMap(t, env, 4)
	upMoved := movedParts(three, four)
	t.Logf("3 → 4: %d of %d partitions moved (minimum: the new replica's %d), stable after %s", len(upMoved), len(four.Map), countOwner(four, "rotor-propeller-3"), time.Since(upAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	downAt := time.Now()
	if err := fourth.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	back := waitStableMap(t, env, 3)
	downMoved := movedParts(four, back)
	t.Logf("4 → 3 (SIGTERM, drain): %d partitions moved (minimum: the leaver's %d), stable after %s", len(downMoved), countOwner(four, "rotor-propeller-3"), time.Since(downAt).Round(time.Millisecond))
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
		if len(pauses) == 0 {
			t.Logf("%s: no workflow was written on both sides of a move", phase.name)
			continue
		}
		t.Logf("%s: pause of moved workflows (old owner's last write → new owner's first) p50 %s, p99 %s, max %s over %d workflows",
			phase.name, pauses[len(pauses)/2].Round(time.Millisecond), pauses[len(pauses)*99/100].Round(time.Millisecond), pauses[len(pauses)-1].Round(time.Millisecond), len(pauses))
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
