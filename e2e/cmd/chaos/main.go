// Command chaos is Rotor's chaos soak (make chaos). It starts the e2e
// harness (kwok runtime, 2 targets, 3 sharded replicas, 2 managers, lease
// TTL 3 s, the control apiserver's audit log on), keeps a mixed load of
// workflows running for -duration while it injects faults drawn from
// -seed, then restores everything, waits for every workflow to end and
// checks the invariants: every workflow ended as expected, no attempt
// had two pods, no orphan task pods, no http call repeated under one
// idempotency key, Rotor's memory bounded. It exits 0 only if all hold;
// otherwise it keeps the component logs and prints where they are.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/e2e/chaos"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

type options struct {
	duration   time.Duration
	seed       int64
	kinds      []chaos.Kind
	inflight   int
	namespaces int
	rssLimit   int64
	keep       bool
	dryRun     bool
}

const (
	replicas = 3
	managers = 2
	targets  = 2
	nsPrefix = "chaos-"
)

var begin = time.Now()

// say prints a line with the time since the start.
func say(format string, args ...any) {
	fmt.Printf("%7.1fs  %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Minute, "how long the load and the faults run")
	flag.Int64Var(&o.seed, "seed", 0, "seed of the fault schedule and the workload (0: from the clock)")
	kinds := flag.String("faults", "", "comma-separated fault kinds to inject (default: all of "+kindList()+")")
	flag.IntVar(&o.inflight, "inflight", 10, "workflows kept running at once (2 cores: keep it modest)")
	flag.IntVar(&o.namespaces, "namespaces", 16, "tenant namespaces the workflows are spread over")
	rssMiB := flag.Int64("rss-limit-mib", 1024, "bound on the RSS of every Rotor process")
	flag.BoolVar(&o.dryRun, "dry-run", false, "print the fault schedule of -seed and -duration and exit")
	flag.BoolVar(&o.keep, "keep", false, "keep the environment's directory even when every invariant holds")
	debug := flag.Bool("debug", false, "run the replicas with --log-level=debug (each placement logged: to trace a duplicate pod)")
	flag.Parse()
	if *debug {
		shardingOptions.ReplicaArgs = append(shardingOptions.ReplicaArgs, "--log-level=debug")
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano() % 1_000_000
	}
	o.rssLimit = *rssMiB << 20
	if *kinds != "" {
		for _, k := range strings.Split(*kinds, ",") {
			if !validKind(chaos.Kind(strings.TrimSpace(k))) {
				fmt.Fprintf(os.Stderr, "chaos: unknown fault kind %q (kinds: %s)\n", k, kindList())
				os.Exit(2)
			}
			o.kinds = append(o.kinds, chaos.Kind(strings.TrimSpace(k)))
		}
	}
	if o.dryRun {
		printSchedule(o)
		return
	}
	dir, err := os.MkdirTemp("", "rotor-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	ok, err := run(o, dir)
	if err != nil {
		say("chaos: %v", err)
	}
	say("done: the soak took %s in all (seed %d)", time.Since(begin).Round(100*time.Millisecond), o.seed)
	if err != nil || !ok || o.keep {
		fmt.Printf("\ncomponent logs are in %s (seed %d)\n", filepath.Join(dir, "logs"), o.seed)
		if err != nil || !ok {
			os.Exit(1)
		}
		return
	}
	_ = os.RemoveAll(dir)
}

func kindList() string {
	var s []string
	for _, k := range chaos.Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

func validKind(k chaos.Kind) bool {
	for _, x := range chaos.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// clients builds clients with a budget above client-go's default 5 QPS:
// the soak's own polling must not be what is slow.
func clients(env *harness.Env) (versioned.Interface, []kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Control.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	rotor, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	var ts []kubernetes.Interface
	for _, t := range env.Env.Targets {
		tc, err := clientcmd.BuildConfigFromFlags("", t.Kubeconfig)
		if err != nil {
			return nil, nil, err
		}
		tc.QPS, tc.Burst = 50, 100
		k, err := kubernetes.NewForConfig(tc)
		if err != nil {
			return nil, nil, err
		}
		ts = append(ts, k)
	}
	return rotor, ts, nil
}

// shardingOptions: lease TTL 3 s; the managers probe targets every second
// so that a target's outage shows in its Cluster within seconds.
var shardingOptions = localcluster.ShardingOptions{LeaseTTL: 3 * time.Second,
	ManagerArgs: []string{"--probe-period=1s", "--probe-timeout=1s"}}
