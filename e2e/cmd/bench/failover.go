package main

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// Failover holds the recovery times, in seconds.
type Failover struct {
	LeaseTTL float64 `json:"leaseTTLSeconds"`
	// SIGKILL of a replica → its partitions owned by others in the map,
	// and → the first status write by a new owner in one of them.
	KillAcquired   float64 `json:"killToPartitionsAcquired"`
	KillFirstWrite float64 `json:"killToFirstWrite"`
	KillLastWrite  float64 `json:"killToLastPartitionWritten"`
	KillPartitions int     `json:"killPartitionsWithWork"`
	// SIGTERM of a replica: per partition, from the release asked (map)
	// to its new owner published.
	HandoffParts int     `json:"handoffPartitions"`
	HandoffP50   float64 `json:"handoffPauseP50"`
	HandoffMax   float64 `json:"handoffPauseMax"`
	DrainTotal   float64 `json:"drainTotal"`
	// Manager's own histogram of the same pauses (mean).
	HandoffMetricMean float64 `json:"handoffPauseMetricMean"`
	// kube-apiserver of a target killed → first re-placed attempt Running.
	Grace        float64  `json:"clusterGraceSeconds"`
	ClusterLoss  float64  `json:"clusterLossToRunning"`
	ClusterWhere string   `json:"clusterLossFirst"`
	Errors       []string `json:"errors,omitempty"`
}

const failParts = 64

// failover runs 3 sharded replicas on 2 targets under load: SIGKILL of
// one replica, SIGTERM (graceful drain) of another, then the loss of a
// target's apiserver.
func failover(ctx context.Context, dir string, res *Result) error {
	f := &res.Failover
	sh := localcluster.ShardingOptions{Partitions: failParts, LeaseTTL: 3 * time.Second,
		ManagerArgs: []string{"--probe-period=1s", "--probe-timeout=1s"}}
	f.LeaseTTL, f.Grace = sh.LeaseTTL.Seconds(), 10
	env, etcd, stop, err := start(ctx, filepath.Join(dir, "failover"), harness.Options{Targets: 2, Replicas: 3, Managers: 1, Sharding: sh})
	if err != nil {
		return err
	}
	defer stop()
	for _, c := range env.Env.Targets {
		if err := env.EditCluster(ctx, c.Name, func(cl *v1alpha1.Cluster) {
			cl.Spec.UnreachableGracePeriod = &metav1.Duration{Duration: time.Duration(f.Grace) * time.Second}
		}); err != nil {
			return err
		}
	}
	nss, err := namespaces(ctx, env, "fo", 30)
	if err != nil {
		return err
	}
	if err := createAll(ctx, env, spread("fo-1", nss, 150, 3, 2*time.Second)); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	if err := replicaKill(ctx, env, etcd, nss, f); err != nil {
		f.Errors = append(f.Errors, "kill: "+err.Error())
	}
	say("failover: SIGKILL → partitions acquired %.2f s, first new-owner write %.2f s, last busy partition written %.2f s (%d partitions with work; lease TTL %.0f s)",
		f.KillAcquired, f.KillFirstWrite, f.KillLastWrite, f.KillPartitions, f.LeaseTTL)
	if err := drain(ctx, env, etcd, f); err != nil {
		f.Errors = append(f.Errors, "drain: "+err.Error())
	}
	say("failover: SIGTERM → %d partitions handed over, pause p50 %.2f s, max %.2f s (manager's histogram mean %.2f s); drained in %.2f s",
		f.HandoffParts, f.HandoffP50, f.HandoffMax, f.HandoffMetricMean, f.DrainTotal)
	if err := clusterLoss(ctx, env, nss, f); err != nil {
		f.Errors = append(f.Errors, "cluster loss: "+err.Error())
	}
	say("failover: target apiserver killed → first re-placed attempt Running %.2f s later (grace %.0f s): %s", f.ClusterLoss, f.Grace, f.ClusterWhere)
	return nil
}

// replicaKill SIGKILLs rotor-propeller-2 and times its partitions' return.
func replicaKill(ctx context.Context, env *harness.Env, etcd *clientv3.Client, nss []string, f *Failover) error {
	victim := "rotor-propeller-2"
	m, err := shardMap(ctx, etcd)
	if err != nil {
		return err
	}
	epochs := map[int]int64{} // victim's partitions that hold workflows
	mine := map[int]bool{}
	for p, s := range m {
		if s.Owner == victim {
			mine[p] = true
		}
	}
	for _, ns := range nss {
		if p := shardproto.PartitionOf(ns, failParts); mine[p] {
			epochs[p] = m[p].Epoch
		}
	}
	if len(epochs) == 0 {
		return fmt.Errorf("%s owns none of the loaded namespaces", victim)
	}
	f.KillPartitions = len(epochs)
	p, err := env.Process(victim)
	if err != nil {
		return err
	}
	killed := time.Now()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	written := map[int]bool{}
	deadline := killed.Add(60 * time.Second)
	for time.Now().Before(deadline) && (f.KillAcquired == 0 || len(written) < len(epochs)) {
		if f.KillAcquired == 0 {
			if m, err := shardMap(ctx, etcd); err == nil {
				back := true
				for p := range mine {
					back = back && m[p].Owner != victim && m[p].Owner != ""
				}
				if back {
					f.KillAcquired = time.Since(killed).Seconds()
				}
			}
		}
		list, err := env.Rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{LabelSelector: labelRun + "=fo-1"})
		if err == nil {
			for _, wf := range list.Items {
				p := shardproto.PartitionOf(wf.Namespace, failParts)
				if e, ok := epochs[p]; ok && wf.Status.ShardEpoch > e && !written[p] {
					written[p] = true
					at := time.Since(killed).Seconds()
					if f.KillFirstWrite == 0 {
						f.KillFirstWrite = at
					}
					f.KillLastWrite = at
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(written) < len(epochs) {
		return fmt.Errorf("%d of %d busy partitions written by a new owner after 60 s", len(written), len(epochs))
	}
	return nil
}

// drain SIGTERMs rotor-propeller-1 and watches the map hand its
// partitions over one by one.
func drain(ctx context.Context, env *harness.Env, etcd *clientv3.Client, f *Failover) error {
	leaving := "rotor-propeller-1"
	maddr, err := addr(env, "rotor-manager-0")
	if err != nil {
		return err
	}
	before, err := scrape([]string{maddr})
	if err != nil {
		return err
	}
	p, err := env.Process(leaving)
	if err != nil {
		return err
	}
	asked, moved := map[int]time.Time{}, map[int]time.Time{}
	owned := map[int]bool{}
	if m, err := shardMap(ctx, etcd); err == nil {
		for i, s := range m {
			if s.Owner == leaving {
				owned[i] = true
			}
		}
	}
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	deadline := start.Add(60 * time.Second)
	for time.Now().Before(deadline) && len(moved) < len(owned) {
		m, err := shardMap(ctx, etcd)
		if err != nil {
			continue
		}
		now := time.Now()
		for i := range owned {
			if _, ok := asked[i]; !ok && m[i].Owner == leaving && m[i].Releasing() {
				asked[i] = now
			}
			if _, ok := moved[i]; !ok && m[i].Owner != leaving {
				moved[i] = now
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.DrainTotal = time.Since(start).Seconds()
	var pauses []float64
	for i, t := range moved {
		if a, ok := asked[i]; ok {
			pauses = append(pauses, t.Sub(a).Seconds())
		}
	}
	f.HandoffParts = len(pauses)
	f.HandoffP50, f.HandoffMax = percentile(pauses, 0.5), percentile(pauses, 1)
	after, err := scrape([]string{maddr})
	if err == nil {
		const pause = "rotor_manager_handoff_pause_seconds"
		if d := after.hist(pause).since(before.hist(pause)); d.count > 0 {
			f.HandoffMetricMean = d.sum / d.count
		}
	}
	if len(moved) < len(owned) {
		return fmt.Errorf("%d of %d partitions moved after 60 s", len(moved), len(owned))
	}
	return nil
}

// clusterLoss starts chains of 4 s tasks over both targets, kills
// target-2's apiserver and times the first attempt re-placed elsewhere.
func clusterLoss(ctx context.Context, env *harness.Env, nss []string, f *Failover) error {
	if err := createAll(ctx, env, spread("fo-2", nss, 100, 3, 4*time.Second)); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	killed := time.Now()
	if err := env.KillAPIServer("target-2"); err != nil {
		return err
	}
	deadline := killed.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		list, err := env.Rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{LabelSelector: labelRun + "=fo-2"})
		if err == nil {
			for _, wf := range list.Items {
				for id, ns := range wf.Status.Nodes {
					as := ns.Attempts
					for i := 1; i < len(as); i++ {
						if as[i-1].Reason == v1alpha1.ReasonClusterLost && (as[i].Phase == v1alpha1.NodeRunning || as[i].Phase == v1alpha1.NodeSucceeded) {
							f.ClusterLoss = time.Since(killed).Seconds()
							f.ClusterWhere = fmt.Sprintf("%s/%s node %s attempt %d on %s", wf.Namespace, wf.Name, id, as[i].Number, as[i].Cluster)
							return nil
						}
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no attempt re-placed 60 s after the kill")
}
