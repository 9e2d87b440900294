// Command harness-startup measures how long the e2e harness takes to bring
// up a control cluster and N target clusters (apiservers ready, CRDs
// established, nodes Ready), over several runs, and prints each run and
// the median.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

func main() {
	runs := flag.Int("runs", 5, "number of start-ups")
	targets := flag.Int("targets", 2, "target clusters")
	runtime := flag.String("runtime", "kwok", "node runtime: kwok or process")
	flag.Parse()
	var times []time.Duration
	for i := 0; i < *runs; i++ {
		dir, err := os.MkdirTemp("", "rotor-startup-")
		if err != nil {
			fail(err)
		}
		env, err := harness.Start(context.Background(), dir, harness.Options{Targets: *targets, Runtime: localcluster.Runtime(*runtime), NoRotor: true})
		if err != nil {
			fail(err)
		}
		times = append(times, env.Started)
		fmt.Printf("run %d: control + %d targets (%s) ready in %s\n", i+1, *targets, *runtime, env.Started.Round(time.Millisecond))
		env.Stop()
		_ = os.RemoveAll(dir)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("median of %d: %s (min %s, max %s; goal < 20s)\n", len(times),
		times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "harness-startup:", err)
	os.Exit(1)
}
