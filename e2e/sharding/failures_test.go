package sharding

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

const slowChain = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  tasks:
    step:
      inputs: {i: integer}
      outputs: {v: integer}
      metadata: {annotations: {sim.rotor.dev/duration: 1500ms, sim.rotor.dev/outputs: '{"v": 1}'}}
      container: {image: busybox}
  nodes:
  - {name: a, task: step, inputs: {i: 0}}
  - {name: b, task: step, inputs: {i: "{{nodes.a.outputs.v}}"}}
  - {name: c, task: step, inputs: {i: "{{nodes.b.outputs.v}}"}}
`

// process returns the most recently started process of that name.
func process(t *testing.T, env *harness.Env, name string) *localcluster.Process {
	t.Helper()
	p, err := env.Process(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func submitSlow(t *testing.T, env *harness.Env, namespaces, per int) {
	t.Helper()
	env.SubmitIn(t, slowChain, "tenant", namespaces, per)
}

// currentMap reads the shard map from etcd.
func currentMap(t *testing.T, c *clientv3.Client) *shardproto.Doc {
	t.Helper()
	doc, err := harness.ShardMap(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestReplicaKilled: SIGKILL a replica in the middle of a run, five times
// (a different victim each round, restarted between rounds). In every
// round every partition of the victim's must be acquired by the others
// within the lease TTL + 2 s (from their logs), the first of them written
// again within that too (from the audit log), the rest not left standing,
// every workflow must succeed, and no task attempt may be repeated
// because of the handoff.
func TestReplicaKilled(t *testing.T) {
	const (
		ttl    = 3 * time.Second
		rounds = 5
	)
	opts := localcluster.ShardingOptions{LeaseTTL: ttl}
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2,
		Sharding: opts})
	c := env.Etcd(t)
	var allBack, firstBack []time.Duration
	for round := 0; round < rounds; round++ {
		doc := waitStableMap(t, env, 3)
		prefix := fmt.Sprintf("kill%d", round)
		env.SubmitIn(t, slowChain, prefix, 30, 5)
		time.Sleep(2 * time.Second) // mid-run: first tasks running
		victimIdx := round % 3
		victim := fmt.Sprintf("rotor-propeller-%d", victimIdx)
		victimParts := map[int]bool{}
		for p, s := range doc.Map {
			if s.Owner == victim {
				victimParts[p] = true
			}
		}
		killedAt := time.Now()
		if err := process(t, env, victim).Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		items := env.WaitWorkflows(t, 150*(round+1), 4*time.Minute)
		for _, wf := range items {
			if !strings.HasPrefix(wf.Namespace, prefix+"-") {
				continue
			}
			if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
				t.Fatalf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
			}
			for id, ns := range wf.Status.Nodes {
				if len(ns.Attempts) != 1 {
					t.Errorf("%s/%s node %s took %d attempts across the handoff", wf.Namespace, wf.Name, id, len(ns.Attempts))
				}
			}
		}
		time.Sleep(2 * time.Second) // let the audit log flush
		// Per partition of the victim's that had work: the first write by
		// another replica after the kill. The round's figure is the
		// slowest partition: until then some of its work stood still.
		back := map[int]time.Duration{}
		for key, ws := range statusWriters(t, env.Control.AuditLog) {
			ns := strings.SplitN(key, "/", 2)[0]
			if !strings.HasPrefix(ns, prefix+"-") {
				continue
			}
			p := shardproto.PartitionOf(ns, len(doc.Map))
			if !victimParts[p] {
				continue
			}
			for _, w := range ws {
				if w.User != victim && w.At.After(killedAt) {
					if d, seen := back[p]; !seen || w.At.Sub(killedAt) < d {
						back[p] = w.At.Sub(killedAt)
					}
					break
				}
			}
		}
		if len(back) == 0 {
			t.Fatalf("round %d: no write by a new owner to any of %s's %d partitions", round, victim, len(victimParts))
		}
		var first, last time.Duration = -1, 0
		slowestPart := -1
		for p, d := range back {
			if d > last {
				last, slowestPart = d, p
			}
			if first < 0 || d < first {
				first = d
			}
		}
		// When each partition was taken: the takeover itself, apart from
		// how long its new owner took to write.
		acq := acquisitions(t, env, killedAt)
		var lastTaken time.Duration
		for p := range victimParts {
			a, ok := acq[p]
			if !ok {
				t.Errorf("round %d: no replica logged acquiring %s's partition %d after the kill", round, victim, p)
				continue
			}
			if a.Replica == victim {
				t.Errorf("round %d: the killed %s logged acquiring partition %d after the kill", round, victim, p)
			}
			lastTaken = max(lastTaken, a.At.Sub(killedAt))
		}
		sa := acq[slowestPart]
		t.Logf("round %d: SIGKILL of %s (%d partitions, %d with work): every partition taken after %s, first written after %s, last after %s (partition %d, taken by %s after %s) (lease TTL %s)",
			round, victim, len(victimParts), len(back), lastTaken.Round(time.Millisecond), first.Round(time.Millisecond), last.Round(time.Millisecond),
			slowestPart, sa.Replica, sa.At.Sub(killedAt).Round(time.Millisecond), ttl)
		// The goal is TTL + 2 s for the takeover: every partition of the
		// victim's acquired by another replica (from their logs), and the
		// first write of a new owner.
		if lastTaken > ttl+2*time.Second {
			t.Errorf("round %d: a partition of %s was acquired by another replica only %s after the kill, want within TTL + 2s = %s", round, victim, lastTaken, ttl+2*time.Second)
		}
		if first > ttl+2*time.Second {
			t.Errorf("round %d: no partition of %s was reconciled again until %s after the kill, want within TTL + 2s = %s", round, victim, first, ttl+2*time.Second)
		}
		// A new owner writes only when something changed, after it has
		// watched the partition's namespaces (their pods in every target
		// first): a running task to end (1.5 s), a start-only write held
		// for --started-write-delay (1 s). That took 0.6–1.5 s after the
		// acquisition on a quiet machine; in a CI run on a machine twice
		// as slow the slowest partition was written 9.9 s after the kill
		// (its first 3.8 s after). This bound catches a partition left
		// standing; the goal above is the takeover's.
		if bound := ttl + 2*time.Second + 8*time.Second; last > bound {
			t.Errorf("round %d: a partition of %s was reconciled again only %s after the kill, want within %s", round, victim, last, bound)
		}
		allBack, firstBack = append(allBack, last), append(firstBack, first)
		final := currentMap(t, c)
		for p := range victimParts {
			if final.Map[p].Owner == victim || final.Map[p].Epoch <= doc.Map[p].Epoch {
				t.Errorf("round %d, partition %d: %+v after the kill (was %+v)", round, p, final.Map[p], doc.Map[p])
			}
		}
		if _, err := env.StartShardedPropeller(victimIdx, opts); err != nil {
			t.Fatalf("restart %s: %v", victim, err)
		}
	}
	slices.Sort(allBack)
	slices.Sort(firstBack)
	t.Logf("SIGKILL over %d runs: all of the victim's partitions back p50 %s, max %s; first partition back p50 %s, max %s (lease TTL %s, goal TTL + 2s)",
		rounds, allBack[rounds/2].Round(time.Millisecond), allBack[rounds-1].Round(time.Millisecond),
		firstBack[rounds/2].Round(time.Millisecond), firstBack[rounds-1].Round(time.Millisecond), ttl)
}

// TestReplicaFrozen: SIGSTOP a replica for twice its lease TTL, then
// SIGCONT. The frozen replica must have held partitions with workflows
// still running when it froze; the audit log must show no write from it
// after its lease expired, another replica writing those workflows
// instead, and every workflow must still succeed.
func TestReplicaFrozen(t *testing.T) {
	const ttl = 3 * time.Second
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2,
		Sharding: localcluster.ShardingOptions{LeaseTTL: ttl}})
	waitStableMap(t, env, 3)
	namespaces := env.SubmitIn(t, slowChain, "tenant", 30, 5)
	time.Sleep(2 * time.Second)
	victim := "rotor-propeller-2"
	busy := busyNamespacesOf(t, env, victim, namespaces)
	if len(busy) == 0 {
		t.Fatalf("%s holds no namespace with a running workflow: freezing it would prove nothing", victim)
	}
	p := process(t, env, victim)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	time.Sleep(2 * ttl)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	items := env.WaitWorkflows(t, 150, 4*time.Minute)
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
		}
	}
	time.Sleep(2 * time.Second)
	expiry := stoppedAt.Add(ttl)
	late, takenOver := 0, 0
	for key, ws := range statusWriters(t, env.Control.AuditLog) {
		ns, _, _ := strings.Cut(key, "/")
		other := false
		for _, w := range ws {
			if w.User == victim && w.At.After(expiry) {
				late++
				t.Errorf("%s written by the frozen %s at %s, %s after its lease expired", key, victim, w.At.Format(time.RFC3339Nano), w.At.Sub(expiry))
			}
			if w.User != victim && w.At.After(stoppedAt) {
				other = true
			}
		}
		if busy[ns] > 0 && other {
			takenOver++
		}
	}
	running := 0
	for _, n := range busy {
		running += n
	}
	t.Logf("%s frozen for %s (lease TTL %s) holding %d namespaces with %d running workflows: %d of them written by another replica after, %d writes by it after its lease expired",
		victim, 2*ttl, ttl, len(busy), running, takenOver, late)
	if takenOver == 0 {
		t.Errorf("no workflow of the frozen replica's namespaces was written by another replica after it froze")
	}
}

// busyNamespacesOf counts, per namespace of replica's partitions in the
// current shard map, the workflows that have not ended.
func busyNamespacesOf(t *testing.T, env *harness.Env, replica string, namespaces []string) map[string]int {
	t.Helper()
	doc := currentMap(t, env.Etcd(t))
	out := map[string]int{}
	for _, ns := range namespaces {
		p := shardproto.PartitionOf(ns, doc.Partitions)
		if doc.Map[p].Owner != replica {
			continue
		}
		wfs, err := env.Rotor.RotorV1alpha1().Workflows(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, wf := range wfs.Items {
			if !wf.Status.Phase.IsTerminal() {
				out[ns]++
			}
		}
	}
	return out
}
