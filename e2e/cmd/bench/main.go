// Command bench is Rotor's benchmark suite (make bench). It starts the
// e2e harness on the kwok runtime and prints every figure next to a
// reference measured in the same run:
//
//   - ceiling: a plain client creating Rotor-shaped pods on the target
//     and waiting for kwok to complete them, pods/s;
//   - overhead: per-node orchestration overhead p50/p99 (from the
//     replicas' rotor_node_orchestration_overhead_seconds) at 10, 100
//     and 1,000 concurrent chains of 5 zero-duration tasks, one replica;
//   - throughput: task nodes completed per second with 1, 2 and 4
//     replicas, and the ratio to the ceiling;
//   - scale: heap and RSS per replica for 20,000 workflows over 200
//     namespaces, each of 4 replicas against one holding everything;
//   - failover: replica SIGKILL → partitions reconciling again; graceful
//     handoff pause; target cluster lost → first re-placed pod running;
//   - cost: CPU per completed node and requests per node with 1, 2, 4
//     and 8 sharded replicas on one load, 3 sharded against 1 unsharded,
//     and throughput with each replica held to a 20 QPS client budget;
//   - data: the data agent's upload and download of a directory (64
//     files of 16 MiB) against raw S3 PUT and GET of the same files on
//     the same SeaweedFS; and the agent's added time per task (one-task
//     workflows with a small file in and out against the same without,
//     on the process runtime);
//   - protocol: the shard protocol at scale on a real etcd (1,000
//     lightweight members, 4,096 partitions, churn): the manager's plan
//     time, partitions moved per join or leave against the minimum and the
//     fair share, time to a settled map after a 10 % burst.
//
// It writes every figure to a JSON file as well.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
)

type options struct {
	pods            int
	levels          []int
	scaleWorkflows  int
	scaleNamespaces int
	only            map[string]bool
	profiles        string
	replicaArgs     []string
	maxReplicas     int
	protoMembers    int
	protoPartitions int
	protoChurn      time.Duration
	costChains      int
	dataFiles       int
	dataFileMiB     int
}

// Result is the JSON file.
type Result struct {
	Date       string    `json:"date"`
	Command    string    `json:"command"`
	Cores      int       `json:"cores"`
	MemoryGiB  float64   `json:"memoryGiB"`
	Seconds    float64   `json:"seconds"`
	Ceiling    Ceiling   `json:"ceiling"`
	Overhead   []Load    `json:"overhead"`
	Throughput []Load    `json:"throughput"`
	Scale      Scale     `json:"scale"`
	Failover   Failover  `json:"failover"`
	Protocol   Protocol  `json:"protocol"`
	Cost       Cost      `json:"cost"`
	Data       Data      `json:"data"`
	AgentCost  AgentCost `json:"agentCost"`
	Errors     []string  `json:"errors,omitempty"`
}

func main() {
	var o options
	levels := flag.String("levels", "10,100,1000", "concurrent chains of the overhead runs; the last is also the throughput load")
	flag.IntVar(&o.pods, "ceiling-pods", 5000, "pods the plain client creates for the ceiling")
	flag.IntVar(&o.scaleWorkflows, "scale-workflows", 20000, "workflows cached for the memory figures")
	flag.IntVar(&o.scaleNamespaces, "scale-namespaces", 200, "namespaces they are spread over")
	flag.StringVar(&o.profiles, "profiles", "", "write replica CPU profiles of the largest one-replica run and heap profiles of the scale run here (go tool pprof)")
	flag.IntVar(&o.maxReplicas, "max-replicas", 4, "throughput runs go up to this many replicas (1, 2 or 4)")
	replicaArgs := flag.String("replica-args", "", "extra rotor-propeller flags, space-separated (e.g. --workers=32)")
	flag.IntVar(&o.protoMembers, "protocol-members", 1000, "lightweight members of the protocol scenario")
	flag.IntVar(&o.protoPartitions, "protocol-partitions", 4096, "partitions of the protocol scenario")
	flag.DurationVar(&o.protoChurn, "protocol-churn", 2*time.Minute, "how long the protocol scenario churns at 5 % of the members per minute")
	flag.IntVar(&o.costChains, "cost-chains", 400, "chains of 5 per run of the cost scenario (its budget runs: a quarter)")
	flag.IntVar(&o.dataFiles, "data-files", 64, "files of the data scenario's directory")
	flag.IntVar(&o.dataFileMiB, "data-file-mib", 16, "MiB per file of the data scenario")
	only := flag.String("only", "engine,scale,failover,protocol,cost,data,agent", "scenarios to run")
	out := flag.String("out", "", "JSON file to write (default .rotor/bench/bench-DATE.json)")
	flag.Parse()
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: bad -levels %q\n", *levels)
			os.Exit(2)
		}
		o.levels = append(o.levels, n)
	}
	o.replicaArgs = strings.Fields(*replicaArgs)
	o.only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		o.only[strings.TrimSpace(s)] = true
	}
	root, err := harness.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	now := time.Now()
	if *out == "" {
		*out = filepath.Join(root, ".rotor", "bench", "bench-"+now.Format("20060102-150405")+".json")
	}
	res := &Result{Date: now.Format("2006-01-02"), Command: "go run ./e2e/cmd/bench " + strings.Join(os.Args[1:], " "),
		Cores: runtime.NumCPU(), MemoryGiB: memTotalGiB()}
	dir, err := os.MkdirTemp("", "rotor-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	for _, s := range []struct {
		name string
		run  func() error
	}{
		{"engine", func() error { return engine(ctx, dir, o, res) }},
		{"scale", func() error { return scale(ctx, dir, o, res) }},
		{"failover", func() error { return failover(ctx, dir, res) }},
		{"protocol", func() error { return protocol(ctx, dir, o, res) }},
		{"cost", func() error { return cost(ctx, dir, o, res) }},
		{"data", func() error { return dataBench(ctx, dir, o.dataFiles, o.dataFileMiB, res) }},
		{"agent", func() error { return agentCost(ctx, dir, 20, res) }},
	} {
		if !o.only[s.name] {
			continue
		}
		say("== %s", s.name)
		if err := s.run(); err != nil {
			say("%s failed: %v", s.name, err)
			res.Errors = append(res.Errors, s.name+": "+err.Error())
		}
	}
	res.Seconds = time.Since(now).Seconds()
	report(os.Stdout, res)
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: encode results:", err)
		os.Exit(1)
	}
	err = os.MkdirAll(filepath.Dir(*out), 0o755)
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: write results:", err)
		os.Exit(1)
	}
	fmt.Printf("\nresults: %s (component logs: %s)\n", *out, dir)
	if len(res.Errors)+len(res.Failover.Errors) > 0 {
		os.Exit(1) // the component logs are kept
	}
	_ = os.RemoveAll(dir)
}

func memTotalGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / (1 << 20)
		}
	}
	return 0
}
