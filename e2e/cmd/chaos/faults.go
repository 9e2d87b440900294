package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/chaos"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// recoveryDeadline bounds every recovery wait; a fault not recovered by
// then is an invariant failure.
const recoveryDeadline = 90 * time.Second

// injector runs a fault schedule against an environment.
type injector struct {
	env  *harness.Env
	sup  *supervisor
	etcd *clientv3.Client
	load *load
	// proxies[i] carries replica i's etcd traffic.
	proxies []*etcdProxy

	mu        sync.Mutex
	injected  map[chaos.Kind]int
	skipped   map[chaos.Kind]int
	recovery  map[chaos.Kind][]time.Duration
	failures  []string
	windows   []chaos.Window
	wg        sync.WaitGroup
	startedAt time.Time
}

func newInjector(env *harness.Env, sup *supervisor, etcd *clientv3.Client, l *load, proxies []*etcdProxy) *injector {
	return &injector{env: env, sup: sup, etcd: etcd, load: l, proxies: proxies,
		injected: map[chaos.Kind]int{}, skipped: map[chaos.Kind]int{}, recovery: map[chaos.Kind][]time.Duration{}}
}

// run starts each fault at its time (faults overlap: each runs in its own
// goroutine) and returns once the last has started; wait waits for them
// all to be recovered or to have given up.
func (in *injector) run(ctx context.Context, start time.Time, faults []chaos.Fault) {
	in.startedAt = start
	for _, f := range faults {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(f.At))):
		}
		// Not ctx: a fault under way when the load ends must still be
		// undone (its component restarted) and its recovery timed.
		in.wg.Go(func() { in.one(context.Background(), f) })
	}
}

func (in *injector) wait() { in.wg.Wait() }

func (in *injector) one(ctx context.Context, f chaos.Fault) {
	say("fault %s", f)
	at := time.Now()
	took, err := in.inject(ctx, f)
	in.mu.Lock()
	defer in.mu.Unlock()
	// The disruption lasts from the fault to its recovery (or to the
	// deadline, when it did not recover).
	to := at.Add(took)
	if err != nil {
		to = time.Now()
	}
	if err != errSkipped {
		in.windows = append(in.windows, chaos.Window{Kind: f.Kind, From: at, To: to})
	}
	switch {
	case err == errSkipped:
		in.skipped[f.Kind]++
		say("fault %s skipped", f.Kind)
	case err != nil:
		in.injected[f.Kind]++
		in.failures = append(in.failures, fmt.Sprintf("%s at %s: %v", f.Kind, f.At.Round(100*time.Millisecond), err))
		say("fault %s at %s: %v", f.Kind, f.At.Round(100*time.Millisecond), err)
	default:
		in.injected[f.Kind]++
		in.recovery[f.Kind] = append(in.recovery[f.Kind], took)
		say("fault %s at %s: recovered in %s", f.Kind, f.At.Round(100*time.Millisecond), took.Round(10*time.Millisecond))
	}
}

var errSkipped = fmt.Errorf("skipped")

// inject brings one fault about and returns its recovery time; see each
// case for what recovery means for that kind.
func (in *injector) inject(ctx context.Context, f chaos.Fault) (time.Duration, error) {
	switch f.Kind {
	case chaos.ReplicaKill:
		// Recovery: from the SIGKILL until every partition has a live
		// owner (running, not frozen) and none is moving. The victim
		// restarts after Down, so that is the later of its partitions
		// taken over and it back and holding its share.
		name := fmt.Sprintf("rotor-propeller-%d", f.Target)
		at := time.Now()
		if err := in.sup.kill(name, f.Down); err != nil {
			return 0, err
		}
		return in.until(ctx, at, "every partition owned by a live replica, none moving", in.mapSettled)
	case chaos.ReplicaStop:
		// Recovery: from the SIGSTOP until every partition has a live
		// owner and none is moving. A frozen replica is not live, so
		// this is the takeover of its partitions by the others (or its
		// return, if that came first); the replica exits on SIGCONT when
		// its lease is gone, and the supervisor restarts it.
		name := fmt.Sprintf("rotor-propeller-%d", f.Target)
		at := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- in.sup.freeze(name, f.Down) }()
		took, err := in.until(ctx, at, "every partition owned by a live replica, none moving", in.mapSettled)
		if ferr := <-errc; ferr != nil && err == nil {
			err = ferr
		}
		return took, err
	case chaos.ReplicaEtcdCut:
		// Recovery: from the cut until every partition has a live owner
		// and none is moving. A cut replica is not live, so this is the
		// takeover of its partitions once its lease expires (its writes
		// must stop by then: see the ownership invariant); the replica
		// exits when it finds its lease gone and, once healed, rejoins.
		name := fmt.Sprintf("rotor-propeller-%d", f.Target)
		at := time.Now()
		in.sup.setCut(name, true)
		in.proxies[f.Target].partition()
		healed := make(chan struct{})
		go func() {
			time.Sleep(f.Down)
			in.proxies[f.Target].heal()
			in.sup.setCut(name, false)
			close(healed)
		}()
		took, err := in.until(ctx, at, "every partition owned by a live replica, none moving", in.mapSettled)
		<-healed
		return took, err
	case chaos.ManagerKill:
		return in.managerKill(ctx, f)
	case chaos.TargetAPIServer:
		return in.targetRestart(ctx, f)
	case chaos.Etcd:
		// Recovery: from the kill until etcd is back, the shard map is
		// readable with every partition owned by a live replica and none
		// moving, and a manager leads. Replicas whose lease ran out
		// meanwhile exit and are restarted by the supervisor.
		at := time.Now()
		if err := in.env.KillEtcd(); err != nil {
			return 0, err
		}
		time.Sleep(f.Down)
		if err := in.env.RestartEtcd(ctx); err != nil {
			return 0, fmt.Errorf("restart etcd: %w", err)
		}
		for _, t := range in.env.Env.Targets {
			if err := in.env.RestartKwok(t.Name); err != nil {
				return 0, err
			}
		}
		return in.until(ctx, at, "etcd back, shard map settled over live replicas, a manager leading", func(ctx context.Context) bool {
			if !in.mapSettled(ctx) {
				return false
			}
			name, _, err := leaderOf(ctx, in.etcd)
			return err == nil && name != "" && in.sup.live(name)
		})
	case chaos.ControlAPIServer:
		// Recovery: from the kill until the apiserver is back and a
		// workflow has ended after that (the engine made progress
		// through it again, seen by the soak's own informer).
		at := time.Now()
		if err := in.env.KillControlAPIServer(); err != nil {
			return 0, err
		}
		time.Sleep(f.Down)
		if err := in.env.RestartControlAPIServer(ctx); err != nil {
			return 0, fmt.Errorf("restart control apiserver: %w", err)
		}
		back := time.Now()
		return in.until(ctx, at, "a workflow ended after the control apiserver came back", func(context.Context) bool {
			return in.load.lastEnded().After(back)
		})
	}
	return 0, fmt.Errorf("unknown fault kind %q", f.Kind)
}

// managerKill SIGKILLs the leading manager. Recovery: from the kill until
// a live manager leads under a new election key (the standby after the
// session TTL, or the restarted victim if it won the new election).
func (in *injector) managerKill(ctx context.Context, f chaos.Fault) (time.Duration, error) {
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	name, rev, err := leaderOf(lctx, in.etcd)
	cancel()
	if err != nil || name == "" || !in.sup.live(name) {
		return 0, errSkipped // no leader known now (etcd down?): nothing to kill
	}
	at := time.Now()
	if err := in.sup.kill(name, f.Down); err != nil {
		return 0, err
	}
	return in.until(ctx, at, "a live manager leading under a new election key", func(ctx context.Context) bool {
		n, r, err := leaderOf(ctx, in.etcd)
		return err == nil && n != "" && r != rev && in.sup.live(n)
	})
}

// targetRestart kills target f.Target's kube-apiserver and starts it again
// after Down. Recovery: from the kill until the apiserver is back and its
// Cluster's Ready condition (written by the leading manager's prober) is
// True. A short outage the prober never saw leaves Ready True throughout:
// then recovery is the restart itself.
func (in *injector) targetRestart(ctx context.Context, f chaos.Fault) (time.Duration, error) {
	target := in.env.Env.Targets[f.Target].Name
	at := time.Now()
	if err := in.env.KillAPIServer(target); err != nil {
		return 0, err
	}
	time.Sleep(f.Down)
	if err := in.env.RestartAPIServer(ctx, target); err != nil {
		return 0, fmt.Errorf("restart %s: %w", target, err)
	}
	if err := in.env.RestartKwok(target); err != nil {
		return 0, err
	}
	return in.until(ctx, at, "cluster "+target+" Ready again", func(ctx context.Context) bool {
		c, err := in.env.Rotor.RotorV1alpha1().Clusters().Get(ctx, target, metav1.GetOptions{})
		if err != nil {
			return false
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ClusterReady)
		return cond != nil && cond.Status == metav1.ConditionTrue
	})
}

// stableFor is how long a recovery condition must keep holding before
// it counts: right after an etcd outage the map looks settled for a
// moment before the replicas whose lease ran out exit.
const stableFor = 5 * time.Second

// until polls ok every 100 ms and returns the time from at to the start of
// the first stretch of stableFor during which it held throughout.
func (in *injector) until(ctx context.Context, at time.Time, what string, ok func(context.Context) bool) (time.Duration, error) {
	deadline := at.Add(recoveryDeadline)
	var since time.Time // start of the current stretch; zero: not holding
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		now, done := time.Now(), ok(pctx)
		cancel()
		switch {
		case !done:
			since = time.Time{}
		case since.IsZero():
			since = now
		}
		if !since.IsZero() && time.Since(since) >= stableFor {
			return since.Sub(at), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not recovered after %s: waited for %s", recoveryDeadline, what)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mapSettled: the shard map gives every partition to a live replica and
// nothing is moving.
func (in *injector) mapSettled(ctx context.Context) bool {
	doc, err := harness.ShardMap(ctx, in.etcd)
	if err != nil {
		return false
	}
	if doc.Map.Moving() > 0 {
		return false
	}
	live := map[string]bool{}
	for _, p := range doc.Map {
		if p.Owner == "" {
			return false
		}
		if _, seen := live[p.Owner]; !seen {
			live[p.Owner] = in.sup.live(p.Owner)
		}
		if !live[p.Owner] {
			return false
		}
	}
	return true
}

// leaderOf reads the manager election's leader: the oldest key under the
// election prefix (what concurrency.Election.Leader reads), with its
// create revision, which changes with every new election won.
func leaderOf(ctx context.Context, c *clientv3.Client) (string, int64, error) {
	prefix := shardproto.Keys{Prefix: localcluster.ShardPrefix}.Leader() + "/"
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil {
		return "", 0, err
	}
	if len(resp.Kvs) == 0 {
		return "", 0, nil
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision, nil
}

func (in *injector) faultWindows() []chaos.Window {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]chaos.Window(nil), in.windows...)
}

// results returns what was injected, skipped and how long recovery took.
func (in *injector) results() (map[chaos.Kind]int, map[chaos.Kind]int, map[chaos.Kind][]time.Duration, []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.injected, in.skipped, in.recovery, append([]string(nil), in.failures...)
}
