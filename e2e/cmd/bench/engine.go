package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/plugins"
	"github.com/rotor-dev/rotor/plugins/pod"
)

// Ceiling is what the target does for a plain client.
type Ceiling struct {
	Pods       int     `json:"pods"`
	Seconds    float64 `json:"seconds"`
	PodsPerSec float64 `json:"podsPerSecond"`
}

// Load is one run of chains through Rotor.
type Load struct {
	Replicas   int     `json:"replicas"`
	Workflows  int     `json:"workflows"`
	Nodes      int     `json:"nodes"`
	Succeeded  int     `json:"succeeded"`
	Seconds    float64 `json:"seconds"`
	NodesPerS  float64 `json:"nodesPerSecond"`
	Ratio      float64 `json:"ratioToCeiling"`
	Samples    int     `json:"overheadSamples"`
	OverP50ms  float64 `json:"overheadP50ms"`
	OverP99ms  float64 `json:"overheadP99ms"`
	RoundP50ms float64 `json:"roundP50ms"`
	// Where a round's time goes, p50 over the run: queue wait, plugin
	// calls (pod creation included), Kubernetes requests.
	QueueP50ms  float64 `json:"queueWaitP50ms"`
	PluginP50ms float64 `json:"pluginCallP50ms"`
	KubeP50ms   float64 `json:"kubeRequestP50ms"`
	// Requests the replicas sent per task node, by "apiserver method"
	// (the control cluster's and the target's).
	RequestsPerNode map[string]float64 `json:"requestsPerNode,omitempty"`
	// CPU seconds each process used during the run, and the machine's
	// CPU seconds in that time (cores × wall).
	CPU          map[string]float64 `json:"cpuSeconds,omitempty"`
	CPUAvailable float64            `json:"cpuSecondsAvailable,omitempty"`
	Error        string             `json:"error,omitempty"`
	namespaces   []string           // the run's
}

// MarshalJSON writes a quantile with no samples (NaN) as 0 and one past
// the histogram's last bucket (+Inf) as -1: JSON has neither.
func (l Load) MarshalJSON() ([]byte, error) {
	type plain Load
	p := plain(l)
	for _, v := range []*float64{&p.OverP50ms, &p.OverP99ms, &p.RoundP50ms, &p.QueueP50ms, &p.PluginP50ms, &p.KubeP50ms} {
		switch {
		case math.IsNaN(*v):
			*v = 0
		case math.IsInf(*v, 0):
			*v = -1
		}
	}
	return json.Marshal(p)
}

const chainLen = 5

// engine measures the ceiling, then overhead at 10, 100 and 1,000
// concurrent chains with one replica, then throughput with 2 and 4.
func engine(ctx context.Context, dir string, o options, res *Result) error {
	sh := localcluster.ShardingOptions{Partitions: 64, ReplicaArgs: o.replicaArgs}
	env, etcd, stop, err := start(ctx, filepath.Join(dir, "engine"), harness.Options{Targets: 1,
		Replicas: 1, Managers: 1, Sharding: sh, SpareReplicas: 3})
	if err != nil {
		return err
	}
	defer stop()

	if res.Ceiling, err = ceiling(ctx, env, o.pods); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	say("ceiling: %d pods in %.1f s = %.0f pods/s (plain client, target's kwok)", res.Ceiling.Pods, res.Ceiling.Seconds, res.Ceiling.PodsPerSec)

	replicas := []string{"rotor-propeller-0"}
	for i, n := range o.levels {
		profile := ""
		if o.profiles != "" && i == len(o.levels)-1 {
			profile = filepath.Join(o.profiles, fmt.Sprintf("cpu-1-replica-%d-chains.pb.gz", n))
		}
		l := runLoad(ctx, env, replicas, n, res.Ceiling.PodsPerSec, profile)
		res.Overhead = append(res.Overhead, l)
		if l.Error != "" {
			res.Errors = append(res.Errors, fmt.Sprintf("%d chains, 1 replica: %s", n, l.Error))
		}
		say("overhead, %d concurrent chains, 1 replica: p50 %.1f ms, p99 %.1f ms (%d samples); %.0f nodes/s; p50 round %.1f ms, queue wait %.1f ms, plugin %.1f ms, kube %.1f ms %s",
			n, l.OverP50ms, l.OverP99ms, l.Samples, l.NodesPerS, l.RoundP50ms, l.QueueP50ms, l.PluginP50ms, l.KubeP50ms, l.Error)
		say("  %s; %s", cpuLine(l), requestLine(l))
	}
	if len(res.Overhead) > 0 {
		res.Throughput = append(res.Throughput, res.Overhead[len(res.Overhead)-1])
	}
	for _, want := range []int{2, 4} {
		if want > o.maxReplicas {
			break
		}
		for i := len(replicas); i < want; i++ {
			if _, err := env.StartShardedPropeller(i, sh); err != nil {
				return err
			}
			replicas = append(replicas, fmt.Sprintf("rotor-propeller-%d", i))
		}
		if _, err := harness.WaitShardMap(ctx, etcd, want, 60*time.Second); err != nil {
			return err
		}
		l := runLoad(ctx, env, replicas, o.levels[len(o.levels)-1], res.Ceiling.PodsPerSec, "")
		res.Throughput = append(res.Throughput, l)
		if l.Error != "" {
			res.Errors = append(res.Errors, fmt.Sprintf("%d replicas: %s", want, l.Error))
		}
		say("throughput, %d replicas: %d nodes in %.1f s = %.0f nodes/s (%.2f of the ceiling) %s", want, l.Nodes, l.Seconds, l.NodesPerS, l.Ratio, l.Error)
		say("  %s; %s", cpuLine(l), requestLine(l))
	}
	return nil
}

// ceiling creates pods shaped like Rotor's (its own pod builder) on the
// target with a client as fast as Rotor's (300 QPS, burst 600) and 16
// creators, and times them until kwok has completed all.
func ceiling(ctx context.Context, env *harness.Env, n int) (Ceiling, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Env.Targets[0].Kubeconfig)
	if err != nil {
		return Ceiling{}, err
	}
	cfg.QPS, cfg.Burst = 300, 600
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Ceiling{}, err
	}
	ns := "ceiling"
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return Ceiling{}, err
	}
	pods := make([]*corev1.Pod, n)
	task := &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}}
	for i := range pods {
		id := plugins.TaskID{Namespace: ns, Workflow: "ceiling", WorkflowUID: "ceiling", Node: fmt.Sprintf("n%05d", i)}
		p, err := pod.New(pod.Config{}).Build(&plugins.TaskContext{ID: id, Task: task}, pod.Name(id))
		if err != nil {
			return Ceiling{}, err
		}
		p.Labels = nil // not Rotor's to watch
		delete(p.Annotations, pod.AnnotWorkflow)
		pods[i] = p
	}
	count, err := watchPods(kc, ns)
	if err != nil {
		return Ceiling{}, err
	}
	defer count.close()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, 1)
	for _, p := range pods {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := kc.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return Ceiling{}, fmt.Errorf("create pod: %w", err)
	default:
	}
	last, _, err := count.wait(n, 10*time.Minute)
	if err != nil {
		return Ceiling{}, err
	}
	secs := last.Sub(start).Seconds()
	return Ceiling{Pods: n, Seconds: secs, PodsPerSec: float64(n) / secs}, nil
}

// runLoad submits n chains of zero-duration tasks at once over 20
// namespaces and measures until all ended, reading the replicas'
// overhead and round histograms before and after.
func runLoad(ctx context.Context, env *harness.Env, replicas []string, n int, ceiling float64, profile string) Load {
	return runLoadIn(ctx, env, runName("r", len(replicas), "n", n), 20, replicas, n, ceiling, profile)
}

// runLoadIn is runLoad under the run name run (unique per environment:
// its namespaces and workflows are counted by it) over nsCount namespaces.
func runLoadIn(ctx context.Context, env *harness.Env, run string, nsCount int, replicas []string, n int, ceiling float64, profile string) Load {
	l := Load{Replicas: len(replicas), Workflows: n, Nodes: n * chainLen}
	fail := func(err error) Load { l.Error = err.Error(); return l }
	var addrs []string
	for _, r := range replicas {
		a, err := addr(env, r)
		if err != nil {
			return fail(err)
		}
		addrs = append(addrs, a)
	}
	nss, err := namespaces(ctx, env, run, nsCount)
	if err != nil {
		return fail(err)
	}
	l.namespaces = nss
	count, err := watchRun(env, run)
	if err != nil {
		return fail(err)
	}
	defer count.close()
	before, err := scrape(addrs)
	if err != nil {
		return fail(err)
	}
	cpu0 := cpuSeconds(env)
	start := time.Now()
	profiled := make(chan error, 1)
	if profile != "" {
		// CPU profile of the first replica over the first 10 s of the load.
		go func() { profiled <- saveProfile(addrs[0], "profile?seconds=10", profile) }()
	} else {
		profiled <- nil
	}
	if err := createAll(ctx, env, spread(run, nss, n, chainLen, 0)); err != nil {
		return fail(err)
	}
	last, ok, err := count.wait(n, 10*time.Minute)
	if perr := <-profiled; perr != nil {
		say("profile: %v", perr)
	}
	if err != nil {
		return fail(err)
	}
	cpu1 := cpuSeconds(env)
	l.CPU, l.CPUAvailable = map[string]float64{}, time.Since(start).Seconds()*float64(runtime.NumCPU())
	for name, v := range cpu1 {
		l.CPU[name] = v - cpu0[name]
	}
	after, err := scrape(addrs)
	if err != nil {
		return fail(err)
	}
	req0, req1 := before.requests(), after.requests()
	l.RequestsPerNode = map[string]float64{}
	hosts := map[string]string{hostOf(env.Control.Server): "control"}
	for _, t := range env.Env.Targets {
		hosts[hostOf(t.Server)] = t.Name
	}
	for k, v := range req1 {
		host, method, _ := strings.Cut(k, " ")
		if name, ok := hosts[host]; ok && v > req0[k] {
			l.RequestsPerNode[name+" "+method] = (v - req0[k]) / float64(l.Nodes)
		}
	}
	l.Succeeded = ok
	l.Seconds = last.Sub(start).Seconds()
	l.NodesPerS = float64(l.Nodes) / l.Seconds
	if ceiling > 0 { // 0: no ceiling measured in this run
		l.Ratio = l.NodesPerS / ceiling
	}
	p50ms := func(name string) float64 { return 1000 * after.hist(name).since(before.hist(name)).quantile(0.5) }
	over := after.hist("rotor_node_orchestration_overhead_seconds").since(before.hist("rotor_node_orchestration_overhead_seconds"))
	l.Samples = int(over.count)
	l.OverP50ms, l.OverP99ms = 1000*over.quantile(0.5), 1000*over.quantile(0.99)
	l.RoundP50ms = p50ms("rotor_reconcile_round_seconds")
	l.QueueP50ms = p50ms("rotor_workqueue_queue_duration_seconds")
	l.PluginP50ms = p50ms("rotor_plugin_call_duration_seconds")
	l.KubeP50ms = p50ms("rotor_kube_request_duration_seconds")
	if ok != n {
		l.Error = fmt.Sprintf("%d of %d workflows did not succeed", n-ok, n)
	}
	return l
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// saveProfile writes /debug/pprof/<what> of the process at addr to path.
func saveProfile(addr, what, path string) error {
	b, err := get("http://" + addr + "/debug/pprof/" + what)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	say("profile written: %s", path)
	return os.WriteFile(path, b, 0o644)
}

func hostOf(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		return server
	}
	return u.Host
}

// cpuLine lists the processes that used the most CPU in a run.
func cpuLine(l Load) string {
	type pc struct {
		name string
		sec  float64
	}
	var ps []pc
	total := 0.0
	for n, v := range l.CPU {
		ps = append(ps, pc{n, v})
		total += v
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].sec > ps[j].sec })
	var parts []string
	for i, p := range ps {
		if i == 6 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", p.name, 100*p.sec/l.CPUAvailable))
	}
	return fmt.Sprintf("Rotor's environment used %.0f%% of the machine's CPU: %s", 100*total/l.CPUAvailable, strings.Join(parts, ", "))
}

func requestLine(l Load) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l.RequestsPerNode)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, l.RequestsPerNode[k]))
	}
	return "requests per task node: " + strings.Join(parts, ", ")
}
