package executor

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

// fleet is a set of clusters whose health a test sets; Pick takes the
// first by name that is healthy and not drained.
type fleet struct {
	health map[string]plugins.ClusterHealth
	picked map[string]int
	// connecting clusters are known but have no client yet.
	connecting map[string]bool
}

func newFleet(names ...string) *fleet {
	f := &fleet{health: map[string]plugins.ClusterHealth{}, picked: map[string]int{}}
	for _, n := range names {
		f.health[n] = plugins.ClusterHealth{Known: true}
	}
	return f
}

func (f *fleet) Pick(plugins.TaskID, *v1alpha1.TaskTemplate, map[string]string) (*plugins.Cluster, error) {
	names := make([]string, 0, len(f.health))
	for n := range f.health {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if h := f.health[n]; !h.Unreachable && !h.Drained {
			f.picked[n]++
			return &plugins.Cluster{Name: n}, nil
		}
	}
	return nil, fmt.Errorf("no cluster fits")
}

func (f *fleet) Get(name string) (*plugins.Cluster, bool) {
	h, ok := f.health[name]
	return &plugins.Cluster{Name: name}, ok && h.Known && !f.connecting[name]
}

func (f *fleet) Health(name string) plugins.ClusterHealth { return f.health[name] }

// TestLostClusterFailsOver: a running attempt on a cluster that is lost
// ends as a system failure (ClusterLost), the node runs again on another
// cluster without spending the task's retries (0 here), and the abandoned
// pod is deleted once the lost cluster answers again.
func TestLostClusterFailsOver(t *testing.T) {
	e, fp, _, wf := setup(t, strings.Replace(chain, "retries: 1", "retries: 0", 1))
	f := newFleet("east", "west")
	e.Clusters = f
	fp.answers["a"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}, {Phase: plugins.PhaseRunning}, ok(`{"y": 9}`)}
	fp.answers["b"] = []plugins.PhaseInfo{ok(`{"y": 81}`)}
	step(t, e, wf)
	if a := wf.Status.Nodes["a"].Attempts; len(a) != 1 || a[0].Cluster != "east" {
		t.Fatalf("attempts %+v, want one on east", a)
	}
	// east stops answering, but within its grace period nothing moves.
	f.health["east"] = plugins.ClusterHealth{Known: true, Unreachable: true}
	step(t, e, wf)
	if n := len(wf.Status.Nodes["a"].Attempts); n != 1 {
		t.Fatalf("%d attempts while east is within its grace period, want 1", n)
	}
	f.health["east"] = plugins.ClusterHealth{Known: true, Unreachable: true, Lost: true, Why: "cluster east has been unreachable for 31s (grace period 30s)"}
	step(t, e, wf) // ends the attempt; the node retries at once
	step(t, e, wf)
	a := wf.Status.Nodes["a"].Attempts
	if len(a) != 2 || !a[0].System || a[0].Reason != v1alpha1.ReasonClusterLost || a[1].Cluster != "west" {
		t.Fatalf("attempts %+v, want a system ClusterLost failure on east, then an attempt on west", a)
	}
	if !strings.Contains(a[0].Message, "unreachable for 31s") {
		t.Errorf("message %q does not say why", a[0].Message)
	}
	if o := wf.Status.Orphans; len(o) != 1 || o[0] != (v1alpha1.Orphan{Cluster: "east", Node: "a", Attempt: 0, Type: "pod"}) {
		t.Fatalf("orphans %+v, want attempt 0 of a on east", o)
	}
	for i := 0; wf.Status.Phase != v1alpha1.WorkflowSucceeded; i++ {
		if i == 10 {
			t.Fatalf("not finished after 10 rounds: %+v", wf.Status)
		}
		step(t, e, wf)
	}
	// The workflow has ended; its rounds still delete the orphan, once
	// east is back and ready.
	if res := step(t, e, wf); res.RequeueAfter != orphanRecheck || fp.aborted["a"] != 0 {
		t.Fatalf("round while east is lost: requeue %s, aborted %d; want a look in %s and nothing deleted", res.RequeueAfter, fp.aborted["a"], orphanRecheck)
	}
	f.health["east"] = plugins.ClusterHealth{Known: true, NotReady: true}
	if res := step(t, e, wf); res.RequeueAfter != orphanRecheck || fp.aborted["a"] != 0 {
		t.Fatalf("round while east answers but is not ready: requeue %s, aborted %d; want it to wait", res.RequeueAfter, fp.aborted["a"])
	}
	f.health["east"] = plugins.ClusterHealth{Known: true}
	if res := step(t, e, wf); res.RequeueAfter != 0 || fp.aborted["a"] != 1 || wf.Status.Orphans != nil {
		t.Fatalf("round after east came back: requeue %s, aborted %d, orphans %+v; want the pod deleted once and nothing left", res.RequeueAfter, fp.aborted["a"], wf.Status.Orphans)
	}
}

// TestClusterWithoutClientYetKeepsItsAttempt: a replica that starts (or
// rereads a kubeconfig Secret) knows a Cluster before it has its client;
// a running attempt there waits for the client instead of failing as if
// the cluster had been removed. Only a removed Cluster fails it.
func TestClusterWithoutClientYetKeepsItsAttempt(t *testing.T) {
	e, fp, _, wf := setup(t, strings.Replace(chain, "retries: 1", "retries: 0", 1))
	f := newFleet("east", "west")
	f.connecting = map[string]bool{}
	e.Clusters = f
	fp.answers["a"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}, ok(`{"y": 9}`)}
	fp.answers["b"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}}
	step(t, e, wf)
	f.connecting["east"] = true
	f.health["east"] = plugins.ClusterHealth{Known: true, Unreachable: true}
	if res := step(t, e, wf); res.RequeueAfter <= 0 || res.RequeueAfter > clientWait {
		t.Fatalf("round while east has no client: requeue %s, want at most %s", res.RequeueAfter, clientWait)
	}
	if a := wf.Status.Nodes["a"].Attempts; len(a) != 1 || a[0].Phase.IsTerminal() {
		t.Fatalf("attempts %+v while east's client is being built, want the first still running", a)
	}
	f.connecting["east"] = false
	f.health["east"] = plugins.ClusterHealth{Known: true}
	step(t, e, wf)
	if a := wf.Status.Nodes["a"].Attempts; len(a) != 1 || a[0].Phase != v1alpha1.NodeSucceeded {
		t.Fatalf("attempts %+v once east has its client, want one that succeeded", a)
	}
	// b runs on east too; east's Cluster is deleted: that attempt is lost.
	step(t, e, wf)
	delete(f.health, "east")
	step(t, e, wf)
	if a := wf.Status.Nodes["b"].Attempts; len(a) == 0 || a[0].Reason != v1alpha1.ReasonNoCluster || !a[0].System {
		t.Fatalf("attempts of b %+v after east was removed, want a system NoCluster failure", a)
	}
}

// TestDrainedClusterMovesOnlyUnstarted: on a drained cluster, an attempt
// whose pod has not started is deleted there and placed elsewhere; a
// running one finishes where it is.
func TestDrainedClusterMovesOnlyUnstarted(t *testing.T) {
	e, fp, _, wf := setup(t, `
tasks: {t: {container: {image: x, command: [sh]}}}
nodes:
- {name: queued, task: t}
- {name: running, task: t}
`)
	f := newFleet("east", "west")
	e.Clusters = f
	fp.answers["queued"] = []plugins.PhaseInfo{{Phase: plugins.PhaseQueued}, {Phase: plugins.PhaseRunning}}
	fp.answers["running"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}}
	step(t, e, wf)
	f.health["east"] = plugins.ClusterHealth{Known: true, Drained: true, Why: "cluster east is drained (taint rotor.dev/drain:NoExecute)"}
	step(t, e, wf)
	step(t, e, wf)
	q, r := wf.Status.Nodes["queued"].Attempts, wf.Status.Nodes["running"].Attempts
	if len(q) != 2 || q[0].Reason != v1alpha1.ReasonClusterDrained || !q[0].System || q[1].Cluster != "west" || fp.aborted["queued"] != 1 {
		t.Fatalf("queued node: attempts %+v, aborted %d; want its pod deleted on east and a new attempt on west", q, fp.aborted["queued"])
	}
	if len(r) != 1 || r[0].Cluster != "east" || fp.aborted["running"] != 0 {
		t.Fatalf("running node: attempts %+v, aborted %d; want it left running on east", r, fp.aborted["running"])
	}
	if wf.Status.Orphans != nil {
		t.Fatalf("orphans %+v: a drained cluster answers, nothing is left behind", wf.Status.Orphans)
	}
}

// copying is a fleet whose pod caches hold some attempts' pods on more
// than one cluster: holders maps node/attempt to the clusters holding it.
type copying struct {
	*fleet
	holders map[string][]string
}

func (c *copying) Doubled(_, _ string) bool {
	for _, h := range c.holders {
		if len(h) > 1 {
			return true
		}
	}
	return false
}

func (c *copying) Strays(id plugins.TaskID, recorded string) []string {
	var out []string
	for _, h := range c.holders[fmt.Sprintf("%s/%d", id.Node, id.Attempt)] {
		if h != recorded {
			out = append(out, h)
		}
	}
	return out
}

// TestPodOnASecondClusterIsDeleted: a round created attempt 0 of a on
// east, east went silent and its status write was lost; east being lost,
// the next round placed attempt 0 again on west, and it ran there. When
// east answers again its cache shows the first pod: the round records it
// as an orphan and deletes it on east (not on west), whether the workflow
// still runs or has ended. The deletion finalizer deletes such a pod too.
func TestPodOnASecondClusterIsDeleted(t *testing.T) {
	e, fp, _, wf := setup(t, chain)
	f := newFleet("west", "east")
	c := &copying{fleet: f, holders: map[string][]string{}}
	e.Clusters = c
	f.health["east"] = plugins.ClusterHealth{Known: true, Unreachable: true, Lost: true}
	fp.answers["a"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}, ok(`{"y": 9}`)}
	fp.answers["b"] = []plugins.PhaseInfo{{Phase: plugins.PhaseRunning}}
	step(t, e, wf)
	if a := wf.Status.Nodes["a"].Attempts; len(a) != 1 || a[0].Cluster != "west" {
		t.Fatalf("attempts %+v, want one on west", a)
	}
	c.holders["a/0"] = []string{"west"}
	step(t, e, wf)
	if len(fp.abortedOn) != 0 || wf.Status.Orphans != nil {
		t.Fatalf("one pod, on the recorded cluster: aborted %v, orphans %+v; want nothing", fp.abortedOn, wf.Status.Orphans)
	}

	// east answers, but is not ready yet: the copy is recorded, and waits.
	f.health["east"] = plugins.ClusterHealth{Known: true, NotReady: true}
	c.holders["a/0"] = []string{"east", "west"}
	if res := step(t, e, wf); res.RequeueAfter == 0 || res.RequeueAfter > orphanRecheck {
		t.Fatalf("requeue %s with a copy waiting on east, want a look within %s", res.RequeueAfter, orphanRecheck)
	}
	if o := wf.Status.Orphans; len(o) != 1 || o[0] != (v1alpha1.Orphan{Cluster: "east", Node: "a", Attempt: 0, Type: "pod"}) {
		t.Fatalf("orphans %+v, want attempt 0 of a on east", o)
	}
	if len(fp.abortedOn) != 0 {
		t.Fatalf("aborted %v while east is not ready, want nothing yet", fp.abortedOn)
	}
	step(t, e, wf) // the same copy seen again is not recorded twice
	if n := len(wf.Status.Orphans); n != 1 {
		t.Fatalf("%d orphans after a second round, want 1", n)
	}
	f.health["east"] = plugins.ClusterHealth{Known: true}
	step(t, e, wf)
	if !slices.Equal(fp.abortedOn, []string{"a/0@east"}) || wf.Status.Orphans != nil {
		t.Fatalf("aborted %v, orphans %+v; want attempt 0 of a deleted on east once, nothing left", fp.abortedOn, wf.Status.Orphans)
	}
	c.holders["a/0"] = []string{"west"}

	// The finalizer: a copy of b's attempt on east, not yet recorded, is
	// deleted there as well as the recorded pods on west; the informer's
	// object it is given is not changed.
	c.holders["b/0"] = []string{"east", "west"}
	fp.abortedOn = nil
	rep, err := e.Cleanup(context.Background(), wf, CleanupPolicy{})
	if err != nil || len(rep.Waiting) != 0 || len(rep.LeftBehind) != 0 {
		t.Fatalf("Cleanup: %v, %+v", err, rep)
	}
	slices.Sort(fp.abortedOn)
	if want := []string{"a/0@west", "b/0@east", "b/0@west"}; !slices.Equal(fp.abortedOn, want) {
		t.Fatalf("Cleanup aborted %v, want %v", fp.abortedOn, want)
	}
	if wf.Status.Orphans != nil {
		t.Fatalf("Cleanup changed the workflow it was given: orphans %+v", wf.Status.Orphans)
	}
}
