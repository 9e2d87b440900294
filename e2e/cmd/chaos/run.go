package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/chaos"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// run is the soak: start, load with faults, restore, check. It returns
// whether every invariant held.
func run(o options, dir string) (bool, error) {
	ctx := context.Background()
	faults := printSchedule(o)
	srv, err := startAdder()
	if err != nil {
		return false, err
	}
	defer srv.srv.Close()

	say("starting the environment in %s", dir)
	// The soak starts the replicas itself: each reaches etcd through a
	// proxy of its own that a fault can cut. Plaintext etcd: the proxies
	// and the soak's own client speak it (the sharded e2e tests cover
	// etcd's TLS and roles).
	env, err := harness.Start(ctx, dir, harness.Options{Targets: targets, Runtime: localcluster.RuntimeKwok,
		Replicas: 0, SpareReplicas: replicas, Sharded: true, Managers: managers, Sharding: shardingOptions, PlainEtcd: true})
	if err != nil {
		return false, fmt.Errorf("start the environment: %w", err)
	}
	defer env.Stop()
	onSignal(env, dir)
	var proxies []*etcdProxy
	for i := 0; i < replicas; i++ {
		p, err := newEtcdProxy(env.EtcdEndpoint)
		if err != nil {
			return false, err
		}
		defer p.close()
		proxies = append(proxies, p)
	}
	sup := newSupervisor(env, shardingOptions, managers, proxies)
	if err := sup.startReplicas(); err != nil {
		return false, err
	}
	say("environment up in %s", env.Started.Round(100*time.Millisecond))
	// The soak's own etcd client logs nothing: it would print a warning
	// for every read during an etcd outage, which the soak causes.
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{env.EtcdEndpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return false, fmt.Errorf("connect to etcd: %w", err)
	}
	defer etcd.Close()
	if _, err := harness.WaitShardMap(ctx, etcd, replicas, 60*time.Second); err != nil {
		return false, fmt.Errorf("before the load: %w", err)
	}
	mapsCtx, stopMaps := context.WithCancel(ctx)
	defer stopMaps()
	maps := recordMaps(mapsCtx, etcd)
	rotor, targetClients, err := clients(env)
	if err != nil {
		return false, err
	}
	var nss []string
	for i := 0; i < o.namespaces; i++ {
		nss = append(nss, fmt.Sprintf("%s%02d", nsPrefix, i))
	}
	if err := env.CreateNamespaces(ctx, nss...); err != nil {
		return false, err
	}
	for _, t := range env.Env.Targets {
		if err := env.EditCluster(ctx, t.Name, func(c *v1alpha1.Cluster) { c.Spec.Capacity.MaxTaskPods = maxTaskPods }); err != nil {
			return false, err
		}
	}

	stopWatch := make(chan struct{})
	pods, err := env.RecordTaskPods(60 * time.Second)
	if err != nil {
		return false, err
	}
	defer pods.Stop()
	names := []string{}
	for i := 0; i < replicas; i++ {
		names = append(names, fmt.Sprintf("rotor-propeller-%d", i))
	}
	for i := 0; i < managers; i++ {
		names = append(names, fmt.Sprintf("rotor-manager-%d", i))
	}
	mem := sampleMemory(env, names, stopWatch)
	l := newLoad(rotor, chaos.NewWorkload(o.seed, srv.base), nss, o.inflight)
	if err := l.watch(stopWatch); err != nil {
		return false, err
	}
	stopSup := make(chan struct{})
	go sup.run(stopSup)
	defer close(stopSup)
	in := newInjector(env, sup, etcd, l, proxies)

	say("load and faults for %s", o.duration)
	loadCtx, stopLoad := context.WithTimeout(ctx, o.duration)
	defer stopLoad()
	start := time.Now()
	loadDone := make(chan struct{})
	go func() { l.run(loadCtx); close(loadDone) }()
	go progress(loadCtx, l)
	in.run(loadCtx, start, faults)
	<-loadCtx.Done()
	<-loadDone
	submitted, ended := l.counts()
	say("load over: %d submitted, %d ended; waiting for the faults in progress to be undone", submitted, ended)
	in.wait()
	if err := sup.allLive(60 * time.Second); err != nil {
		return false, err
	}
	say("every component is running again")
	c := &checks{o: o, env: env, rotor: rotor, targets: targetClients, load: l, pods: pods, mem: mem, srv: srv, sup: sup, in: in, etcd: etcd, maps: maps}
	ok := c.all(ctx, stopWatch)
	return ok, nil
}

// maxTaskPods caps every target: low enough that the load reaches it,
// so the soak checks the caps hold through the faults.
const maxTaskPods = 6

// progress prints the load's counts every 15 s.
func progress(ctx context.Context, l *load) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(15 * time.Second):
		}
		s, e := l.counts()
		say("load: %d submitted, %d ended, %d in flight", s, e, s-e)
	}
}

// onSignal stops the environment on SIGINT or SIGTERM: its processes run
// in their own process groups and would outlive the soak otherwise.
func onSignal(env *harness.Env, dir string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-ch
		say("%s: stopping the environment; component logs are in %s", s, filepath.Join(dir, "logs"))
		env.Stop()
		os.Exit(130)
	}()
}

// printSchedule draws the run's faults from its seed and prints them.
func printSchedule(o options) []chaos.Fault {
	cfg := chaos.DefaultScheduleConfig(o.duration)
	cfg.Replicas, cfg.Targets, cfg.LeaseTTL, cfg.Kinds = replicas, targets, shardingOptions.LeaseTTL, o.kinds
	faults := chaos.Schedule(o.seed, cfg)
	say("seed %d: %d faults over %s (%d overlapping another class's outage):", o.seed, len(faults), o.duration, chaos.Overlaps(faults))
	for _, f := range faults {
		fmt.Printf("           %s\n", f)
	}
	return faults
}
