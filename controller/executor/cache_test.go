package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/taskcache"
	"github.com/rotor-dev/rotor/plugins"
)

// memCache is an in-memory Cache with the etcd store's semantics.
type memCache struct {
	mu      sync.Mutex
	entries map[taskcache.Key]*taskcache.Entry
	holders map[taskcache.Key]string
}

func newMemCache() *memCache {
	return &memCache{entries: map[taskcache.Key]*taskcache.Entry{}, holders: map[taskcache.Key]string{}}
}

func (m *memCache) Get(_ context.Context, k taskcache.Key) (*taskcache.Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[k]
	return e, ok, nil
}
func (m *memCache) Put(_ context.Context, e *taskcache.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[e.Key] = e
	delete(m.holders, e.Key)
	return nil
}
func (m *memCache) Reserve(_ context.Context, k taskcache.Key, owner string, _ time.Time, _ time.Duration) (bool, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.holders[k]; ok && h != owner {
		return false, h, nil
	}
	m.holders[k] = owner
	return true, owner, nil
}
func (m *memCache) Release(_ context.Context, k taskcache.Key, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holders[k] == owner {
		delete(m.holders, k)
	}
	return nil
}

const cachedSpec = `
inputs: {n: {type: integer, value: 3}}
tasks:
  sq: {inputs: {x: integer}, outputs: {y: integer}, cache: {version: v1, serialize: true}, container: {image: x, command: [sh]}}
nodes: [{name: a, task: sq, inputs: {x: "{{workflow.inputs.n}}"}}]
outputs: {y: "{{nodes.a.outputs.y}}"}
`

func cachedRun(t *testing.T, mc *memCache, ns, uid, src string) (*Executor, *fakePlugin, *v1alpha1.Workflow) {
	e, fp, _, wf := setup(t, src)
	e.Cache = mc
	wf.Namespace, wf.UID = ns, typesUID(uid)
	fp.script = squareAnswer
	return e, fp, wf
}

func TestCacheHitRunsNothing(t *testing.T) {
	mc := newMemCache()
	e1, fp1, wf1 := cachedRun(t, mc, "team-a", "u1", cachedSpec)
	runUntilDone(t, e1, fp1, wf1, squareAnswer)
	if fp1.handled["a"] == 0 || wf1.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("first run: handled %d, %s", fp1.handled["a"], wf1.Status.Phase)
	}
	for _, tc := range []struct {
		name, ns, src string
		hit           bool
	}{
		{"same inputs", "team-a", cachedSpec, true},
		{"other inputs", "team-a", strings.Replace(cachedSpec, "value: 3", "value: 4", 1), false},
		{"other version", "team-a", strings.Replace(cachedSpec, "version: v1", "version: v2", 1), false},
		{"other tenant", "team-b", cachedSpec, false},
		// Another workflow's task of the same name that does something
		// else must not reuse these outputs.
		{"same name, other image", "team-a", strings.Replace(cachedSpec, "image: x", "image: y", 1), false},
		{"same name, other command", "team-a", strings.Replace(cachedSpec, "command: [sh]", "command: [bash]", 1), false},
		{"same name, other output types", "team-a", strings.Replace(cachedSpec, "outputs: {y: integer}", "outputs: {y: float}", 1), false},
		// What only says how or where it runs keeps the key.
		{"other retries, timeout and metadata", "team-a", strings.Replace(cachedSpec, "cache:", "retries: 3, timeout: 5m, metadata: {labels: {team: a}}, cache:", 1), true},
		{"other serialize", "team-a", strings.Replace(cachedSpec, "serialize: true", "serialize: false", 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fp, wf := cachedRun(t, mc, tc.ns, "u-"+tc.name, tc.src)
			runUntilDone(t, e, fp, wf, squareAnswer)
			if hit := fp.handled["a"] == 0; hit != tc.hit {
				t.Fatalf("cache hit = %v (handled %d), want %v", hit, fp.handled["a"], tc.hit)
			}
			if tc.hit && (wf.Status.Nodes["a"].Reason != "CacheHit" || string(wf.Status.Outputs["y"].Raw) != "9") {
				t.Fatalf("hit node %+v, outputs %v", wf.Status.Nodes["a"], wf.Status.Outputs)
			}
		})
	}
}

func TestSerializedCacheWaitsForTheRunningExecution(t *testing.T) {
	mc := newMemCache()
	e1, fp1, wf1 := cachedRun(t, mc, "team-a", "u1", cachedSpec)
	e2, fp2, wf2 := cachedRun(t, mc, "team-a", "u2", cachedSpec)
	fp1.script = func(string, map[string]jsonRaw) plugins.PhaseInfo {
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning}
	}
	step(t, e1, wf1)
	step(t, e2, wf2)
	if fp2.handled["a"] != 0 || wf2.Status.Nodes["a"].Reason != "WaitingForCache" {
		t.Fatalf("second execution: handled %d, node %+v; want waiting", fp2.handled["a"], wf2.Status.Nodes["a"])
	}
	runUntilDone(t, e1, fp1, wf1, squareAnswer)
	runUntilDone(t, e2, fp2, wf2, squareAnswer)
	if fp2.handled["a"] != 0 || wf2.Status.Nodes["a"].Reason != "CacheHit" {
		t.Fatalf("after the first finished: handled %d, node %+v; want a cache hit", fp2.handled["a"], wf2.Status.Nodes["a"])
	}
}

func TestSerializedCacheReleasedOnFailure(t *testing.T) {
	mc := newMemCache()
	src := strings.Replace(cachedSpec, "cache:", "retries: 0, cache:", 1)
	e1, fp1, wf1 := cachedRun(t, mc, "team-a", "u1", src)
	runUntilDone(t, e1, fp1, wf1, func(string, map[string]jsonRaw) plugins.PhaseInfo { return fail(1, "x") })
	e2, fp2, wf2 := cachedRun(t, mc, "team-a", "u2", src)
	runUntilDone(t, e2, fp2, wf2, squareAnswer)
	if fp2.handled["a"] == 0 || wf2.Status.Phase != v1alpha1.WorkflowSucceeded {
		t.Fatalf("after a failed holder: handled %d, %s; want a run", fp2.handled["a"], wf2.Status.Phase)
	}
}

type jsonRaw = json.RawMessage

func typesUID(s string) types.UID { return types.UID(s) }

// launchedCluster is oneCluster that reports some attempts' pods as
// already in a target (created by a round whose status write was lost).
type launchedCluster struct {
	oneCluster
	launched map[string]bool // node/attempt
}

func (l launchedCluster) Launched(id plugins.TaskID) bool {
	return l.launched[fmt.Sprintf("%s/%d", id.Node, id.Attempt)]
}

// TestCacheDoesNotServeAnAttemptAlreadyLaunched: a round created a's pod
// and lost its status write; meanwhile another workflow filled the cache.
// The redone round must run the attempt whose pod exists (adopting it),
// not take the cache hit and leave that pod unrecorded, never deleted
// (the chaos soak found such pods after deleting every workflow).
func TestCacheDoesNotServeAnAttemptAlreadyLaunched(t *testing.T) {
	mc := newMemCache()
	e1, fp1, wf1 := cachedRun(t, mc, "team-a", "u1", cachedSpec)
	runUntilDone(t, e1, fp1, wf1, squareAnswer)
	e, fp, wf := cachedRun(t, mc, "team-a", "u2", cachedSpec)
	e.Clusters = launchedCluster{oneCluster: e.Clusters.(oneCluster), launched: map[string]bool{"a/0": true}}
	runUntilDone(t, e, fp, wf, squareAnswer)
	a := wf.Status.Nodes["a"]
	if fp.handled["a"] == 0 || a.Reason == "CacheHit" || len(a.Attempts) != 1 || a.Attempts[0].Pod == "" {
		t.Fatalf("node a %+v handled %d times: want its launched attempt run and recorded, not a cache hit", a, fp.handled["a"])
	}
	if wf.Status.Phase != v1alpha1.WorkflowSucceeded || string(wf.Status.Outputs["y"].Raw) != "9" {
		t.Fatalf("workflow %s with %v", wf.Status.Phase, wf.Status.Outputs)
	}
}
