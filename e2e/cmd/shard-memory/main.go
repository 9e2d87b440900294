// Command shard-memory measures how a replica's memory follows its shard:
// with 4 sharded replicas and 20,000 finished workflows over 200
// namespaces it reads each replica's in-use heap (after a GC), then drains
// three of them so one replica holds everything, and reads its heap again.
// It prints both, live heap and heap in use, and their ratios (goal: each
// of 4 at most 35 % of one).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/manager/shardmap"
)

func main() {
	namespaces := flag.Int("namespaces", 200, "tenant namespaces")
	per := flag.Int("per-namespace", 100, "workflows per namespace")
	partitions := flag.Int("partitions", 256, "partitions of the ring (P)")
	profiles := flag.String("profiles", "", "write each replica's heap profile into this directory (for go tool pprof)")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "rotor-shard-memory-")
	env, err := harness.Start(context.Background(), dir, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok,
		Replicas: 4, Sharded: true, Managers: 2,
		Sharding: localcluster.ShardingOptions{Partitions: *partitions}})
	check(err)
	defer env.Stop()
	waitMap(env, 4)
	total := *namespaces * *per
	start := time.Now()
	create(env, *namespaces, *per)
	fmt.Printf("created %d workflows over %d namespaces in %s\n", total, *namespaces, time.Since(start).Round(time.Second))
	waitTerminal(env, total)
	fmt.Printf("all %d finished after %s\n", total, time.Since(start).Round(time.Second))
	time.Sleep(5 * time.Second)
	four := map[string]heap{}
	var sumLive, sumInuse int64
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("rotor-propeller-%d", i)
		h := readHeap(env, name, *profiles, "of4")
		four[name] = h
		sumLive += h.Live
		sumInuse += h.Inuse
		fmt.Printf("4 replicas: %s live heap %.1f MiB, heap in use %.1f MiB\n", name, mib(h.Live), mib(h.Inuse))
	}
	for i := 1; i < 4; i++ {
		check(proc(env, fmt.Sprintf("rotor-propeller-%d", i)).Signal(syscall.SIGTERM))
	}
	waitMap(env, 1)
	time.Sleep(10 * time.Second) // the survivor lists the namespaces it took over
	one := readHeap(env, "rotor-propeller-0", *profiles, "single")
	fmt.Printf("1 replica: rotor-propeller-0 live heap %.1f MiB, heap in use %.1f MiB\n", mib(one.Live), mib(one.Inuse))
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("rotor-propeller-%d", i)
		h := four[name]
		fmt.Printf("ratio %s (of 4) / single replica: live %.0f%%, in use %.0f%%\n", name,
			100*float64(h.Live)/float64(one.Live), 100*float64(h.Inuse)/float64(one.Inuse))
	}
	fmt.Printf("mean of 4 / single: live %.0f%%, in use %.0f%% (goal ≤ 35%%)\n",
		100*float64(sumLive)/4/float64(one.Live), 100*float64(sumInuse)/4/float64(one.Inuse))
}

func create(env *harness.Env, namespaces, per int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for n := 0; n < namespaces; n++ {
		ns := fmt.Sprintf("tenant-%03d", n)
		check(env.CreateNamespaces(ctx, ns))
		for i := 0; i < per; i++ {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				// Aborted at once: the object and its status are what is
				// cached, with no pods to run.
				wf := &v1alpha1.Workflow{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("wf-%03d", i), Namespace: ns},
					Spec: v1alpha1.WorkflowSpec{
						Abort: true,
						Tasks: map[string]v1alpha1.TaskTemplate{"t": {Container: &v1alpha1.ContainerSpec{Image: "busybox", Command: []string{"true"}}}},
						Nodes: []v1alpha1.Node{{Name: "a", Task: "t"}, {Name: "b", Task: "t", DependsOn: []string{"a"}}},
					},
				}
				for {
					_, err := env.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{})
					if err == nil || strings.Contains(err.Error(), "already exists") {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
}

func waitTerminal(env *harness.Env, total int) {
	for {
		list, err := env.Rotor.RotorV1alpha1().Workflows("").List(context.Background(), metav1.ListOptions{})
		if err == nil {
			done := 0
			for _, wf := range list.Items {
				if wf.Status.Phase.IsTerminal() {
					done++
				}
			}
			if done == total {
				return
			}
		}
		time.Sleep(2 * time.Second)
	}
}

func waitMap(env *harness.Env, n int) {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{env.EtcdEndpoint}})
	check(err)
	defer c.Close()
	for {
		resp, err := c.Get(context.Background(), shardmap.Keys{Prefix: localcluster.ShardPrefix}.Map())
		if err == nil && len(resp.Kvs) > 0 {
			if doc, err := shardmap.Decode(resp.Kvs[0].Value); err == nil && doc.Map.Moving() == 0 {
				owners := map[string]bool{}
				for _, p := range doc.Map {
					owners[p.Owner] = true
				}
				if len(owners) == n && !owners[""] {
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func proc(env *harness.Env, name string) *localcluster.Process {
	for _, p := range env.Processes {
		if p.Name == name {
			return p
		}
	}
	check(fmt.Errorf("no process %s", name))
	return nil
}

var addrRE = regexp.MustCompile(`"msg":"serving metrics and health","addr":"([^"]+)"`)

// heap is a replica's heap after a forced GC: Live is what the objects
// it still references take (HeapAlloc); Inuse adds the free space of the
// spans they sit in (HeapInuse), which the runtime keeps until it scavenges.
type heap struct{ Live, Inuse int64 }

// readHeap reads a replica's heap statistics from its heap profile after
// a GC, and keeps the profile in dir (if set) for go tool pprof.
func readHeap(env *harness.Env, name, dir, tag string) heap {
	f, err := os.Open(proc(env, name).Log)
	check(err)
	defer f.Close()
	addr := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	get := func(query string) []byte {
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap?" + query)
		check(err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		check(err)
		return b
	}
	var h heap
	for _, line := range strings.Split(string(get("gc=1&debug=1")), "\n") {
		for prefix, into := range map[string]*int64{"# HeapAlloc = ": &h.Live, "# HeapInuse = ": &h.Inuse} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				check(err)
				*into = n
			}
		}
	}
	if h.Live == 0 || h.Inuse == 0 {
		check(fmt.Errorf("no HeapAlloc/HeapInuse in the heap profile of %s", name))
	}
	if dir != "" {
		check(os.MkdirAll(dir, 0o755))
		check(os.WriteFile(filepath.Join(dir, name+"-"+tag+".pb.gz"), get("gc=1"), 0o644))
	}
	return h
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "shard-memory:", err)
		os.Exit(1)
	}
}
