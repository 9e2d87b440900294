package sharding

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/ring"
	"github.com/rotor-dev/rotor/manager/shardmap"
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

func process(t *testing.T, env *harness.Env, name string) *localcluster.Process {
	t.Helper()
	for _, p := range env.Processes {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no process %s", name)
	return nil
}

func submitSlow(t *testing.T, env *harness.Env, namespaces, per int) {
	t.Helper()
	ctx := context.Background()
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("tenant-%02d", n)
		if err := env.CreateNamespaces(ctx, ns); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < per; i++ {
			wf := &v1alpha1.Workflow{}
			_ = manifest.Unmarshal([]byte(strings.Replace(slowChain, "NAME", fmt.Sprintf("wf-%02d", i), 1)), wf)
			if _, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// ownedBy returns the partitions a replica owns in the current map.
func currentMap(t *testing.T, c *clientv3.Client) *shardmap.Doc {
	t.Helper()
	resp, err := c.Get(context.Background(), shardmap.Keys{Prefix: localcluster.ShardPrefix}.Map())
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("shard map: %v", err)
	}
	doc, err := shardmap.Decode(resp.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestReplicaKilled: SIGKILL a replica in the middle of a run. Its
// partitions must be reconciled again by the others within the lease TTL
// + 2 s (from the audit log), every workflow must succeed, and no task
// attempt may be repeated because of the handoff.
func TestReplicaKilled(t *testing.T) {
	const ttl = 3 * time.Second
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2,
		Sharding: localcluster.ShardingOptions{LeaseTTL: ttl}})
	doc := waitStableMap(t, env, 3)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{env.EtcdEndpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	submitSlow(t, env, 30, 5)
	time.Sleep(2 * time.Second) // mid-run: first tasks running
	victim := "rotor-propeller-1"
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
	items := waitAllDone(t, env, 150, 4*time.Minute)
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
		}
		for id, ns := range wf.Status.Nodes {
			if len(ns.Attempts) != 1 {
				t.Errorf("%s/%s node %s took %d attempts across the handoff", wf.Namespace, wf.Name, id, len(ns.Attempts))
			}
		}
	}
	time.Sleep(2 * time.Second)
	writers := statusWriters(t, env.Control.AuditLog)
	var firstAfter time.Duration = -1
	for key, ws := range writers {
		ns := strings.SplitN(key, "/", 2)[0]
		if !victimParts[ring.PartitionOf(ns, len(doc.Map))] {
			continue
		}
		for _, w := range ws {
			if w.User != victim && w.At.After(killedAt) {
				if d := w.At.Sub(killedAt); firstAfter < 0 || d < firstAfter {
					firstAfter = d
				}
				break
			}
		}
	}
	t.Logf("SIGKILL of %s (%d partitions): first write by a new owner %s later (lease TTL %s)", victim, len(victimParts), firstAfter.Round(time.Millisecond), ttl)
	if firstAfter < 0 || firstAfter > ttl+2*time.Second {
		t.Fatalf("the victim's partitions were reconciled again %s after the kill, want within TTL + 2s = %s", firstAfter, ttl+2*time.Second)
	}
	final := currentMap(t, c)
	for p := range victimParts {
		if final.Map[p].Owner == victim || final.Map[p].Epoch <= doc.Map[p].Epoch {
			t.Errorf("partition %d: %+v after the kill (was %+v)", p, final.Map[p], doc.Map[p])
		}
	}
}

// TestReplicaFrozen: SIGSTOP a replica for twice its lease TTL, then
// SIGCONT. The audit log must show no write from it after its lease
// expired, and every workflow must still succeed.
func TestReplicaFrozen(t *testing.T) {
	const ttl = 3 * time.Second
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 3, Sharded: true, Managers: 2,
		Sharding: localcluster.ShardingOptions{LeaseTTL: ttl}})
	waitStableMap(t, env, 3)
	submitSlow(t, env, 30, 5)
	time.Sleep(2 * time.Second)
	victim := "rotor-propeller-2"
	p := process(t, env, victim)
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	time.Sleep(2 * ttl)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	items := waitAllDone(t, env, 150, 4*time.Minute)
	for _, wf := range items {
		if wf.Status.Phase != v1alpha1.WorkflowSucceeded {
			t.Fatalf("%s/%s: %s (%s)", wf.Namespace, wf.Name, wf.Status.Phase, wf.Status.Message)
		}
	}
	time.Sleep(2 * time.Second)
	expiry := stoppedAt.Add(ttl)
	late := 0
	for key, ws := range statusWriters(t, env.Control.AuditLog) {
		for _, w := range ws {
			if w.User == victim && w.At.After(expiry) {
				late++
				t.Errorf("%s written by the frozen %s at %s, %s after its lease expired", key, victim, w.At.Format(time.RFC3339Nano), w.At.Sub(expiry))
			}
		}
	}
	t.Logf("%s frozen for %s (lease TTL %s): %d writes after its lease expired", victim, 2*ttl, ttl, late)
}
