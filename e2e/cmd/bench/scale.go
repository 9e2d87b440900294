package main

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// Scale is replica memory with many finished workflows cached.
type Scale struct {
	Workflows  int     `json:"workflows"`
	Namespaces int     `json:"namespaces"`
	Partitions int     `json:"partitions"`
	Four       []mem   `json:"fourReplicas"`
	One        mem     `json:"oneReplica"`
	LiveRatio  float64 `json:"meanLiveRatio"`
	RSSRatio   float64 `json:"meanRSSRatio"`
	MaxLive    float64 `json:"maxLiveRatio"`
	MaxRSS     float64 `json:"maxRSSRatio"`
	CreateSecs float64 `json:"createSeconds"`
}

// scale caches n workflows over the namespaces in 4 sharded replicas,
// reads each one's memory, drains three so one holds everything, and
// reads it again. The workflows are aborted at creation: what is
// measured is the cache of objects and statuses, not running pods.
func scale(ctx context.Context, dir string, o options, res *Result) error {
	sh := localcluster.ShardingOptions{Partitions: 256}
	env, etcd, stop, err := start(ctx, filepath.Join(dir, "scale"), harness.Options{Targets: 1, Replicas: 4, Managers: 1, Sharding: sh})
	if err != nil {
		return err
	}
	defer stop()
	s := &res.Scale
	s.Workflows, s.Namespaces, s.Partitions = o.scaleWorkflows, o.scaleNamespaces, sh.Partitions
	nss, err := namespaces(ctx, env, "tenant", o.scaleNamespaces)
	if err != nil {
		return err
	}
	count, err := watchRun(env, "scale")
	if err != nil {
		return err
	}
	defer count.close()
	var wfs []*v1alpha1.Workflow
	for i := 0; i < o.scaleWorkflows; i++ {
		wf := chain(fmt.Sprintf("wf-%05d", i), nss[i%len(nss)], "scale", 2, 0)
		wf.Spec.Abort = true
		wfs = append(wfs, wf)
	}
	start := time.Now()
	if err := createAll(ctx, env, wfs); err != nil {
		return err
	}
	s.CreateSecs = time.Since(start).Seconds()
	if _, _, err := count.wait(o.scaleWorkflows, 15*time.Minute); err != nil {
		return err
	}
	say("scale: %d workflows over %d namespaces created in %.0f s, all ended after %.0f s", o.scaleWorkflows, o.scaleNamespaces, s.CreateSecs, time.Since(start).Seconds())
	time.Sleep(5 * time.Second)
	for i := 0; i < 4; i++ {
		m, err := readMem(env, fmt.Sprintf("rotor-propeller-%d", i))
		if err != nil {
			return err
		}
		s.Four = append(s.Four, m)
	}
	heapProfile(env, o, "rotor-propeller-0", "heap-of-4.pb.gz")
	for i := 1; i < 4; i++ {
		p, err := env.Process(fmt.Sprintf("rotor-propeller-%d", i))
		if err != nil {
			return err
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			return err
		}
	}
	if _, err := harness.WaitShardMap(ctx, etcd, 1, 2*time.Minute); err != nil {
		return err
	}
	// The survivor lists the namespaces it took over; wait until its
	// caches hold every workflow.
	if err := waitReady(env, "rotor-propeller-0", time.Minute); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	if s.One, err = readMem(env, "rotor-propeller-0"); err != nil {
		return err
	}
	heapProfile(env, o, "rotor-propeller-0", "heap-single.pb.gz")
	var sumLive, sumRSS float64
	for _, m := range s.Four {
		sumLive += m.LiveMiB / s.One.LiveMiB
		sumRSS += m.RSSMiB / s.One.RSSMiB
		s.MaxLive = max(s.MaxLive, m.LiveMiB/s.One.LiveMiB)
		s.MaxRSS = max(s.MaxRSS, m.RSSMiB/s.One.RSSMiB)
	}
	s.LiveRatio, s.RSSRatio = sumLive/4, sumRSS/4
	say("scale: one replica live heap %.1f MiB, RSS %.1f MiB; each of 4 / one: live mean %.0f%% (max %.0f%%), RSS mean %.0f%% (max %.0f%%)",
		s.One.LiveMiB, s.One.RSSMiB, 100*s.LiveRatio, 100*s.MaxLive, 100*s.RSSRatio, 100*s.MaxRSS)
	return nil
}

// waitReady polls a replica's /readyz.
func waitReady(env *harness.Env, name string, timeout time.Duration) error {
	a, err := addr(env, name)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := get("http://" + a + "/readyz"); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", name, timeout)
}

func heapProfile(env *harness.Env, o options, replica, file string) {
	if o.profiles == "" {
		return
	}
	a, err := addr(env, replica)
	if err == nil {
		err = saveProfile(a, "heap?gc=1", filepath.Join(o.profiles, file))
	}
	if err != nil {
		say("heap profile of %s: %v", replica, err)
	}
}
