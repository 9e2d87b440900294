package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// Cost is the scaling benchmark: what a completed task node costs as
// sharded replicas are added, whether the work divides when each replica
// has a fixed client budget, and sharded against unsharded.
type Cost struct {
	Chains int `json:"chains"`
	// Runs: the same load at each replica count (1, 2, 4, 8).
	Runs []CostRun `json:"runs"`
	// Sharded3 and Unsharded: 3 sharded replicas, then one unsharded
	// propeller, on that load.
	Sharded3  *CostRun `json:"sharded3,omitempty"`
	Unsharded *CostRun `json:"unsharded,omitempty"`
	// AllPods4: 4 sharded replicas each watching every pod of the target
	// (--pod-watches=all): the reference for the shard-scoped watches.
	AllPods4 *CostRun `json:"allPods4,omitempty"`
	// Budget: a smaller load with every replica held to BudgetQPS on the
	// control cluster and on the target, at 1, 2 and 4 replicas.
	BudgetQPS    float64   `json:"budgetQPS"`
	BudgetChains int       `json:"budgetChains"`
	Budget       []CostRun `json:"budget"`
}

// CostRun is one load with its CPU per completed node, in milliseconds,
// by part (cpuSplit). Gross is what each part used during the run; Net
// takes off what the part uses idle (measured just before the run, over
// idleFor), which every process costs per second whatever it does: a run
// that takes longer pays more of it per node.
type CostRun struct {
	Load
	Gross cpuSplit `json:"grossCPUmsPerNode"`
	Net   cpuSplit `json:"netCPUmsPerNode"`
	// Idle is each part's CPU with nothing to do, in cores.
	Idle cpuSplit `json:"idleCores"`
	// MaxShare is the largest fraction of the run's namespaces one
	// replica held: 1/MaxShare is the speed-up the split allows.
	MaxShare float64 `json:"maxShare"`
}

// cpuSplit is CPU by part: all Rotor processes (replicas and managers)
// together, the control apiserver, the targets' apiservers, etcd.
type cpuSplit struct {
	Rotor   float64 `json:"rotor"`
	Control float64 `json:"controlAPIServer"`
	Target  float64 `json:"targetAPIServers"`
	Etcd    float64 `json:"etcd"`
}

func splitCPU(cpu map[string]float64) cpuSplit {
	var s cpuSplit
	for name, v := range cpu {
		switch {
		case strings.HasPrefix(name, "rotor-propeller-"), strings.HasPrefix(name, "rotor-manager"):
			s.Rotor += v
		case name == "kube-apiserver-control":
			s.Control += v
		case strings.HasPrefix(name, "kube-apiserver-target"):
			s.Target += v
		case name == "etcd":
			s.Etcd += v
		}
	}
	return s
}

func (s cpuSplit) scale(k float64) cpuSplit {
	return cpuSplit{s.Rotor * k, s.Control * k, s.Target * k, s.Etcd * k}
}

func (s cpuSplit) minus(o cpuSplit) cpuSplit {
	return cpuSplit{s.Rotor - o.Rotor, s.Control - o.Control, s.Target - o.Target, s.Etcd - o.Etcd}
}

// MarshalJSON writes the load's fields and the cost's in one object (the
// embedded Load's own MarshalJSON would otherwise drop the cost's).
func (r CostRun) MarshalJSON() ([]byte, error) {
	load, err := json.Marshal(r.Load)
	if err != nil {
		return nil, err
	}
	type own struct {
		Gross    cpuSplit `json:"grossCPUmsPerNode"`
		Net      cpuSplit `json:"netCPUmsPerNode"`
		Idle     cpuSplit `json:"idleCores"`
		MaxShare float64  `json:"maxShare"`
	}
	extra, err := json.Marshal(own{r.Gross, r.Net, r.Idle, r.MaxShare})
	if err != nil {
		return nil, err
	}
	return append(append(load[:len(load)-1], ','), extra[1:]...), nil
}

// costOf turns a load and the idle CPU before it (cores) into its cost.
func costOf(l Load, idle cpuSplit) CostRun {
	r := CostRun{Load: l, Idle: idle}
	if l.Succeeded == 0 {
		return r
	}
	perNode := 1000 / float64(l.Succeeded*chainLen)
	r.Gross = splitCPU(l.CPU).scale(perNode)
	r.Net = splitCPU(l.CPU).minus(idle.scale(l.CPUAvailable / float64(runtime.NumCPU()))).scale(perNode)
	return r
}

// budgetQPS is each replica's request budget in the budget runs: small
// enough that one replica is held by it, not by the machine. The budget
// runs spread their chains over more namespaces, so that the split by
// namespace is close to even and the figure is about the protocol, not
// about hashing few names.
const (
	budgetQPS        = 20
	budgetNamespaces = 100
)

// idleFor is how long each run first watches the idle Rotor processes.
const idleFor = 5 * time.Second

// measure runs one load with its idle baseline and, with etcd, the share
// of its namespaces each replica holds.
func measure(ctx context.Context, env *harness.Env, etcd *clientv3.Client, run string, nsCount int, replicas []string, chains int, ceil float64) CostRun {
	c0 := cpuSeconds(env)
	time.Sleep(idleFor)
	c1 := cpuSeconds(env)
	used := map[string]float64{}
	for name, v := range c1 {
		used[name] = v - c0[name]
	}
	r := costOf(runLoadIn(ctx, env, run, nsCount, replicas, chains, ceil, ""), splitCPU(used).scale(1/idleFor.Seconds()))
	r.MaxShare = 1
	if etcd != nil && len(r.namespaces) > 0 {
		if doc, err := harness.ShardMap(ctx, etcd); err == nil {
			per := map[string]int{}
			for _, ns := range r.namespaces {
				per[doc.Map[shardproto.PartitionOf(ns, len(doc.Map))].Owner]++
			}
			most := 0
			for _, n := range per {
				most = max(most, n)
			}
			r.MaxShare = float64(most) / float64(len(r.namespaces))
		}
	}
	return r
}

// cost runs the load on one environment, adding sharded replicas 1 → 2 →
// 4 → 8, then dropping to 3, then replacing them with one unsharded
// propeller, then starting over with budgeted replicas. Each phase uses
// new replica names, so every metrics address is that process's own.
func cost(ctx context.Context, dir string, o options, res *Result) error {
	const replicas = 8
	sh := localcluster.ShardingOptions{Partitions: 64, ReplicaArgs: o.replicaArgs}
	env, etcd, stop, err := start(ctx, filepath.Join(dir, "cost"), harness.Options{Targets: 1,
		Replicas: 1, Managers: 1, Sharding: sh, SpareReplicas: 17})
	if err != nil {
		return err
	}
	defer stop()
	c := &res.Cost
	c.Chains, c.BudgetQPS, c.BudgetChains = o.costChains, budgetQPS, o.costChains/2
	ceil := res.Ceiling.PodsPerSec // 0 when the engine scenario did not run: ratios stay 0

	names := []string{"rotor-propeller-0"}
	for _, want := range []int{1, 2, 4, replicas} {
		for i := len(names); i < want; i++ {
			if _, err := env.StartShardedPropeller(i, sh); err != nil {
				return err
			}
			names = append(names, fmt.Sprintf("rotor-propeller-%d", i))
		}
		if _, err := harness.WaitShardMap(ctx, etcd, want, 90*time.Second); err != nil {
			return err
		}
		r := measure(ctx, env, etcd, fmt.Sprintf("c-r%d", want), 20, names, o.costChains, ceil)
		c.Runs = append(c.Runs, r)
		sayCost(fmt.Sprintf("cost, %d sharded replicas", want), r, c.Runs[0])
	}

	// 3 sharded replicas (the others leave gracefully), then 1 unsharded.
	if len(names) > 3 {
		if err := leave(ctx, env, etcd, names[3:], 3); err != nil {
			return err
		}
		names = names[:3]
	}
	if len(names) == 3 {
		r := measure(ctx, env, etcd, "c-s3", 20, names, o.costChains, ceil)
		c.Sharded3 = &r
		sayCost("cost, 3 sharded replicas", r, c.Runs[0])
	}
	if err := leave(ctx, env, etcd, names, 0); err != nil {
		return err
	}
	unsharded, err := env.StartPropeller(13)
	if err != nil {
		return err
	}
	// Its idle baseline starts once it has synced every workflow so far.
	if err := waitReady(env, "rotor-propeller-13", 2*time.Minute); err != nil {
		return err
	}
	r := measure(ctx, env, nil, "c-u1", 20, []string{"rotor-propeller-13"}, o.costChains, ceil)
	c.Unsharded = &r
	sayCost("cost, 1 unsharded replica", r, c.Runs[0])
	if c.Sharded3 != nil {
		say("  3 sharded against 1 unsharded: %.0f against %.0f nodes/s = %.2f (goal ≥ 1)", c.Sharded3.NodesPerS, r.NodesPerS, c.Sharded3.NodesPerS/r.NodesPerS)
	}
	unsharded.Stop(30 * time.Second)

	// The reference for scoped pod watches: 4 replicas watching every pod.
	ash := sh
	ash.ReplicaArgs = append(append([]string{}, sh.ReplicaArgs...), "--pod-watches=all")
	var anames []string
	for i := 0; i < 4; i++ {
		if _, err := env.StartShardedPropeller(14+i, ash); err != nil {
			return err
		}
		anames = append(anames, fmt.Sprintf("rotor-propeller-%d", 14+i))
	}
	if _, err := harness.WaitShardMap(ctx, etcd, 4, 90*time.Second); err != nil {
		return err
	}
	ar := measure(ctx, env, etcd, "c-a4", 20, anames, o.costChains, ceil)
	c.AllPods4 = &ar
	sayCost("cost, 4 sharded replicas each watching every pod (--pod-watches=all)", ar, c.Runs[0])
	if len(c.Runs) > 2 {
		say("  4 replicas, shard-scoped against every-pod watches: target apiserver %.2f against %.2f ms per node, Rotor %.2f against %.2f",
			c.Runs[2].Gross.Target, ar.Gross.Target, c.Runs[2].Gross.Rotor, ar.Gross.Rotor)
	}
	if err := leave(ctx, env, etcd, anames, 0); err != nil {
		return err
	}

	// Budgeted replicas: each held to budgetQPS on both clusters.
	if err := env.EditCluster(ctx, env.Env.Targets[0].Name, func(cl *v1alpha1.Cluster) {
		cl.Spec.Client.QPS, cl.Spec.Client.Burst = budgetQPS, 2*budgetQPS
	}); err != nil {
		return err
	}
	bsh := sh
	bsh.ReplicaArgs = append(append([]string{}, sh.ReplicaArgs...), fmt.Sprintf("--kube-qps=%d", budgetQPS), fmt.Sprintf("--kube-burst=%d", 2*budgetQPS))
	var bnames []string
	for _, want := range []int{1, 2, 4} {
		for i := len(bnames); i < want; i++ {
			if _, err := env.StartShardedPropeller(8+i, bsh); err != nil {
				return err
			}
			bnames = append(bnames, fmt.Sprintf("rotor-propeller-%d", 8+i))
		}
		if _, err := harness.WaitShardMap(ctx, etcd, want, 90*time.Second); err != nil {
			return err
		}
		r := measure(ctx, env, etcd, fmt.Sprintf("b-r%d", want), budgetNamespaces, bnames, c.BudgetChains, ceil)
		c.Budget = append(c.Budget, r)
		say("budget %d QPS per replica, %d replicas: %.1f nodes/s = %.2f × one replica's %.1f (goal ≥ %.1f; the split of %d namespaces allows %.2f: largest share %.0f %%); %s", budgetQPS, want,
			r.NodesPerS, r.NodesPerS/c.Budget[0].NodesPerS, c.Budget[0].NodesPerS, 0.9*float64(want), budgetNamespaces, 1/r.MaxShare, 100*r.MaxShare, cpuLine(r.Load))
	}
	return nil
}

// leave stops the given replicas with SIGTERM (each drains) and waits for
// the map over the rest (none: the replicas are just gone).
func leave(ctx context.Context, env *harness.Env, etcd *clientv3.Client, names []string, rest int) error {
	for _, name := range names {
		p, err := env.Process(name)
		if err != nil {
			return err
		}
		p.Stop(60 * time.Second)
	}
	if rest == 0 {
		return nil
	}
	_, err := harness.WaitShardMap(ctx, etcd, rest, 90*time.Second)
	return err
}

func sayCost(what string, r, ref CostRun) {
	say("%s: %.0f nodes/s (%d nodes, %.1f s) %s", what, r.NodesPerS, r.Nodes, r.Seconds, r.Error)
	say("  CPU ms per node, gross: %s", r.Gross.against(ref.Gross))
	say("  CPU ms per node, net of idle: %s", r.Net.against(ref.Net))
	say("  idle cores: Rotor %.3f, control apiserver %.3f, target apiservers %.3f, etcd %.3f", r.Idle.Rotor, r.Idle.Control, r.Idle.Target, r.Idle.Etcd)
	say("  %s", requestLine(r.Load))
}

// against prints s beside its ratio to ref, part by part.
func (s cpuSplit) against(ref cpuSplit) string {
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	return fmt.Sprintf("Rotor %.2f (×%.2f of 1 replica), control apiserver %.2f (×%.2f), target apiserver %.2f (×%.2f), etcd %.2f (×%.2f)",
		s.Rotor, ratio(s.Rotor, ref.Rotor), s.Control, ratio(s.Control, ref.Control), s.Target, ratio(s.Target, ref.Target), s.Etcd, ratio(s.Etcd, ref.Etcd))
}

// costTable is the report's rows of the cost scenario.
func costTable(c Cost) [][]string {
	if len(c.Runs) == 0 {
		return nil
	}
	ref := c.Runs[0]
	var rows [][]string
	row := func(name string, r CostRun) {
		keys := make([]string, 0, len(r.RequestsPerNode))
		for k := range r.RequestsPerNode {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var req []string
		for _, k := range keys {
			req = append(req, fmt.Sprintf("%s %.2f", k, r.RequestsPerNode[k]))
		}
		rows = append(rows, []string{name,
			fmt.Sprintf("%.0f nodes/s; requests/node: %s", r.NodesPerS, strings.Join(req, ", ")),
			"CPU ms per node, gross: " + r.Gross.against(ref.Gross),
			"net of idle: " + r.Net.against(ref.Net)})
	}
	for _, r := range c.Runs {
		row(fmt.Sprintf("cost, %d sharded replicas, %d chains of 5", r.Replicas, c.Chains), r)
	}
	if c.Sharded3 != nil {
		row("cost, 3 sharded replicas", *c.Sharded3)
	}
	if c.Unsharded != nil {
		row("cost, 1 unsharded replica", *c.Unsharded)
	}
	if c.AllPods4 != nil {
		row("cost, 4 sharded replicas watching every pod", *c.AllPods4)
	}
	if c.Sharded3 != nil && c.Unsharded != nil && c.Unsharded.NodesPerS > 0 {
		rows = append(rows, []string{"3 sharded against 1 unsharded", fmt.Sprintf("%.0f nodes/s", c.Sharded3.NodesPerS),
			fmt.Sprintf("%.0f nodes/s", c.Unsharded.NodesPerS), fmt.Sprintf("%.2f", c.Sharded3.NodesPerS/c.Unsharded.NodesPerS)})
	}
	for _, r := range c.Budget {
		rows = append(rows, []string{fmt.Sprintf("budget %.0f QPS each, %d replicas, %d chains", c.BudgetQPS, r.Replicas, c.BudgetChains),
			fmt.Sprintf("%.1f nodes/s (largest share of the namespaces %.0f %%: the split allows ×%.2f)", r.NodesPerS, 100*r.MaxShare, 1/r.MaxShare),
			fmt.Sprintf("1 replica: %.1f nodes/s", c.Budget[0].NodesPerS),
			fmt.Sprintf("×%.2f (goal ≥ %.1f)", r.NodesPerS/c.Budget[0].NodesPerS, 0.9*float64(r.Replicas))})
	}
	return rows
}
