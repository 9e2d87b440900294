package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/e2e/chaos"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/shardproto"
)

// Deadlines of the checks after the load.
const (
	endDeadline     = 5 * time.Minute // every submitted workflow ended
	orphanDeadline  = 30 * time.Second
	deleteDeadline  = 3 * time.Minute // every workflow deleted, finalizers done
	cleanupDeadline = 60 * time.Second
	// repeatSlack widens fault windows when matching repeated http calls
	// to them: a round retried with backoff may call again shortly after.
	repeatSlack = 2 * time.Second
	// ownershipSlack is how far from a write the soak looks for a map
	// that gave the writer its partition: its map watch lags the
	// replicas' a little. A write past a lost lease or a handoff by more
	// than this is caught.
	ownershipSlack = time.Second
)

type checks struct {
	o       options
	env     *harness.Env
	rotor   versioned.Interface
	targets []kubernetes.Interface
	load    *load
	pods    *harness.PodRecorder
	mem     *memory
	srv     *adder
	sup     *supervisor
	in      *injector
	etcd    *clientv3.Client
	maps    *mapRecorder

	failed []string
}

// verdict records one invariant and prints it.
func (c *checks) verdict(name string, problems []string, summary string) {
	state := "ok"
	if len(problems) > 0 {
		state = "FAILED"
		c.failed = append(c.failed, name)
	}
	fmt.Printf("  %-34s %-6s %s\n", name, state, summary)
	for i, p := range problems {
		if i == 20 {
			fmt.Printf("      ... and %d more\n", len(problems)-20)
			break
		}
		fmt.Printf("      %s\n", p)
	}
}

// all runs every check after the load and prints the report.
func (c *checks) all(ctx context.Context, stopWatch chan struct{}) bool {
	exp := c.load.expectations()
	outcomes, waitErr := c.waitEnded(ctx, exp)
	lost := chaos.Lost(exp, outcomes)
	orphansRunning := c.orphansOfEnded(ctx)
	deleteErr := c.deleteAll(ctx)
	orphansLeft := c.leftAfterDelete(ctx)
	close(stopWatch)
	c.pods.Stop()
	dups, attempts, events := c.pods.Result()
	spans, bad := c.srv.snapshot()
	calls := map[string]int{}
	for k, s := range spans {
		calls[k] = s.Calls
	}
	repeats := chaos.RepeatedKeys(calls)
	explained, unexplained := chaos.ExplainRepeats(spans, c.in.faultWindows(), repeatSlack)
	rss, samples := c.mem.result()
	_, mapErr := harness.WaitShardMap(ctx, c.etcd, replicas, 30*time.Second)

	fmt.Printf("\n== chaos report (seed %d, %s of load)\n", c.o.seed, c.o.duration)
	c.printFaults()
	fmt.Println("invariants:")
	kinds := map[string]int{}
	for _, e := range exp {
		kinds[e.Kind]++
	}
	var ws []string
	if waitErr != nil {
		ws = append(ws, waitErr.Error())
	}
	c.verdict("workflows ended as expected", append(ws, lost...), fmt.Sprintf("%d submitted %v, %d lost", len(exp), kinds, len(lost)))
	if len(exp) == 0 {
		c.verdict("some workflows were submitted", []string{"none was: the run proves nothing"}, "")
	}
	misspent := chaos.RetriesMisspent(exp, outcomes)
	userFailures := 0
	for _, o := range outcomes {
		for _, n := range o.UserFailures {
			userFailures += n
		}
	}
	c.verdict("no user retry spent on a system failure", misspent,
		fmt.Sprintf("%d attempts failed by their task; %d workflows were designed to fail, 2 attempts each", userFailures, kinds["fail"]))
	if kinds["fail"] > 0 && userFailures == 0 {
		c.verdict("user failures were recorded at all", []string{"no attempt failed by its task: the check saw nothing"}, "")
	}
	c.verdict("no attempt had two pods", dups, fmt.Sprintf("%d attempts' pods seen (%d informer events), %d duplicates", attempts, events, len(dups)))
	if attempts == 0 {
		c.verdict("pods were seen at all", []string{"the pod informers saw no task pod"}, "")
	}
	var over []string
	most := c.pods.MostActive()
	reached := 0
	for _, t := range c.env.Env.Targets {
		switch n := most[t.Name]; {
		case n > maxTaskPods:
			over = append(over, fmt.Sprintf("%s had %d task pods active at once, cap %d", t.Name, n, maxTaskPods))
		case n == 0:
			over = append(over, fmt.Sprintf("%s never had an active task pod: the cap was not exercised there", t.Name))
		case n == maxTaskPods:
			reached++
		}
	}
	c.verdict("capacity caps never exceeded", over, fmt.Sprintf("most active pods at once %v (pod informers), cap %d; reached on %d targets", most, maxTaskPods, reached))
	c.verdict("no unfinished pod of an ended workflow", orphansRunning, fmt.Sprintf("%d after up to %s", len(orphansRunning), orphanDeadline))
	var dl []string
	if deleteErr != nil {
		dl = append(dl, deleteErr.Error())
	}
	c.verdict("no task pod left after deletion", append(dl, orphansLeft...), fmt.Sprintf("%d left %s after every workflow was deleted", len(orphansLeft), cleanupDeadline))
	var badCalls []string
	if bad > 0 {
		badCalls = append(badCalls, fmt.Sprintf("%d calls without a key or with a body the server could not read", bad))
	}
	// Each repeat is listed with whether a fault was under way while its
	// calls were made (the plugin repeats a call whose round could not
	// record its answer): the verdict is strict either way.
	c.verdict("no http call repeated under one key", append(badCalls, append(unexplained, explained...)...),
		fmt.Sprintf("%d keys, %d repeated: %d while a fault was under way (windows widened by %s), %d during none",
			len(calls), len(repeats), len(explained), repeatSlack, len(unexplained)))
	if len(calls) == 0 {
		c.verdict("http tasks were called at all", []string{"the server got no call"}, "")
	}
	c.checkOwnership()
	c.verdict(fmt.Sprintf("RSS of every Rotor process < %d MiB", c.o.rssLimit>>20), c.rssProblems(rss, samples), rssSummary(rss, samples))
	var sm []string
	if mapErr != nil {
		sm = append(sm, mapErr.Error())
	}
	c.verdict("shard map settled at the end", sm, fmt.Sprintf("%d owners, nothing moving", replicas))
	_, _, supErrs := c.sup.counts()
	_, _, _, injErrs := c.in.results()
	c.verdict("every fault recovered", append(injErrs, supErrs...), "within "+recoveryDeadline.String()+" each")
	if len(c.failed) > 0 {
		fmt.Printf("\nFAILED: %s\n", strings.Join(c.failed, "; "))
		return false
	}
	fmt.Println("\nevery invariant held")
	return true
}

// checkOwnership: every Workflow write of a replica (audit log) fell
// within its ownership of the partition (shard map history), and no
// workflow's status epoch ever went back (the soak's informer).
func (c *checks) checkOwnership() {
	time.Sleep(2 * time.Second) // the audit log is written in batches of up to 1 s
	writes, err := replicaWrites(c.env)
	maps := c.maps.maps()
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(maps) > 0 {
		n := len(maps[0].Owners)
		problems = append(problems, chaos.WritesOutsideOwnership(writes, maps, func(ns string) int { return shardproto.PartitionOf(ns, n) }, ownershipSlack)...)
	}
	c.verdict("replicas wrote only what they owned", problems,
		fmt.Sprintf("%d Workflow writes by replicas (audit log) against %d shard map versions, slack %s", len(writes), len(maps), ownershipSlack))
	if len(writes) == 0 || len(maps) < 2 {
		c.verdict("ownership was exercised", []string{fmt.Sprintf("%d replica writes, %d map versions: want writes and at least one move", len(writes), len(maps))}, "")
	}
	updates, back := c.load.epochs()
	c.verdict("workflow epochs never went back", back, fmt.Sprintf("%d status updates seen, %d with a lower shardEpoch than before", updates, len(back)))
}

func (c *checks) printFaults() {
	injected, skipped, recovery, _ := c.in.results()
	selfExits, restarts, _ := c.sup.counts()
	fmt.Println("faults injected (recovery time: see e2e/cmd/chaos/faults.go for what each kind's means):")
	for _, k := range chaos.Kinds {
		if injected[k]+skipped[k] == 0 {
			continue
		}
		fmt.Printf("  %-18s %3d injected, %d skipped; recovery %s\n", k, injected[k], skipped[k], chaos.Summarize(recovery[k]))
	}
	var names []string
	for n := range restarts {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Print("restarts by the supervisor (exits no fault caused directly):")
	for _, n := range names {
		fmt.Printf(" %s %d (%d)", n, restarts[n], selfExits[n])
	}
	fmt.Println()
}

// waitEnded polls every workflow until each expected one has ended, and
// returns what they ended with.
func (c *checks) waitEnded(ctx context.Context, exp []chaos.Expectation) (map[string]chaos.Outcome, error) {
	deadline := time.Now().Add(endDeadline)
	say("waiting up to %s for all %d submitted workflows to end", endDeadline, len(exp))
	for {
		got, err := c.outcomes(ctx)
		var open []string
		for _, e := range exp {
			if o := got[e.Key()]; !o.Found || !o.Phase.IsTerminal() {
				open = append(open, e.Key())
			}
		}
		if err == nil && len(open) == 0 {
			say("every submitted workflow has ended")
			return got, nil
		}
		if time.Now().After(deadline) {
			if len(open) > 5 {
				open = append(open[:5], "...")
			}
			return got, fmt.Errorf("waited %s for every submitted workflow to end: %d have not (%s); last list error: %v", endDeadline, len(open), strings.Join(open, ", "), err)
		}
		time.Sleep(2 * time.Second)
	}
}

// outcomes lists every workflow from the apiserver (not a cache).
func (c *checks) outcomes(ctx context.Context) (map[string]chaos.Outcome, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := c.rotor.RotorV1alpha1().Workflows("").List(lctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	out := map[string]chaos.Outcome{}
	for _, wf := range list.Items {
		o := chaos.Outcome{Found: true, Phase: wf.Status.Phase, Message: wf.Status.Message, Outputs: map[string]string{}, UserFailures: map[string]int{}}
		for k, v := range wf.Status.Outputs {
			o.Outputs[k] = string(v.Raw)
		}
		nodes, err := wf.Status.AllNodes()
		if err != nil {
			return nil, fmt.Errorf("nodes of %s/%s: %w", wf.Namespace, wf.Name, err)
		}
		for id, n := range nodes {
			for _, a := range n.Attempts {
				if a.Phase == v1alpha1.NodeFailed && !a.System {
					o.UserFailures[id]++
				}
			}
		}
		out[wf.Namespace+"/"+wf.Name] = o
	}
	return out, nil
}

// orphansOfEnded polls until no unfinished task pod belongs to an ended
// (or vanished) workflow, up to orphanDeadline, and returns those left.
func (c *checks) orphansOfEnded(ctx context.Context) []string {
	deadline := time.Now().Add(orphanDeadline)
	for {
		problems, err := c.orphansNow(ctx)
		if err == nil && len(problems) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return append(problems, err.Error())
			}
			return problems
		}
		time.Sleep(time.Second)
	}
}

func (c *checks) orphansNow(ctx context.Context) ([]string, error) {
	list, err := c.rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	ended, running := map[string]string{}, map[string]string{}
	for _, wf := range list.Items {
		k := wf.Namespace + "/" + wf.Name
		if wf.Status.Phase.IsTerminal() {
			ended[string(wf.UID)] = k
		} else {
			running[string(wf.UID)] = k
		}
	}
	pods, err := taskPods(ctx, c.env, c.targets, nsPrefix)
	if err != nil {
		return nil, err
	}
	return chaos.Orphans(pods, ended, running), nil
}

// deleteAll deletes every workflow of the soak's namespaces and waits for
// them to be gone (their finalizers delete their pods in every target).
func (c *checks) deleteAll(ctx context.Context) error {
	say("deleting every workflow; waiting up to %s for their finalizers", deleteDeadline)
	for _, ns := range c.load.namespaces {
		if err := c.rotor.RotorV1alpha1().Workflows(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("delete the workflows of %s: %w", ns, err)
		}
	}
	deadline := time.Now().Add(deleteDeadline)
	for {
		list, err := c.rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{})
		left := 0
		if err == nil {
			for _, wf := range list.Items {
				if strings.HasPrefix(wf.Namespace, nsPrefix) {
					left++
				}
			}
			if left == 0 {
				say("every workflow is gone")
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for the deleted workflows to go: %d are still there (list error: %v)", deleteDeadline, left, err)
		}
		time.Sleep(time.Second)
	}
}

// leftAfterDelete polls the targets until no task pod of the soak's
// namespaces is left, up to cleanupDeadline, and returns those left.
func (c *checks) leftAfterDelete(ctx context.Context) []string {
	deadline := time.Now().Add(cleanupDeadline)
	for {
		pods, err := taskPods(ctx, c.env, c.targets, nsPrefix)
		if err == nil && len(pods) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return []string{err.Error()}
			}
			return chaos.Orphans(pods, nil, nil)
		}
		time.Sleep(time.Second)
	}
}

func (c *checks) rssProblems(rss map[string]int64, samples int) []string {
	if samples == 0 {
		return []string{"no RSS sample was taken"}
	}
	var out []string
	for n, b := range rss {
		if b >= c.o.rssLimit {
			out = append(out, fmt.Sprintf("%s reached %d MiB", n, b>>20))
		}
	}
	sort.Strings(out)
	return out
}

func rssSummary(rss map[string]int64, samples int) string {
	var names []string
	for n := range rss {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(n, "rotor-"), rss[n]>>20))
	}
	return fmt.Sprintf("max MiB over %d samples: %s", samples, strings.Join(parts, ", "))
}
