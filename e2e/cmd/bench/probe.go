package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/shardproto"
)

// What the benchmark reads from the running processes: their metrics,
// heaps, RSS and the shard map.

// addr finds where a Rotor process serves /metrics.
func addr(env *harness.Env, name string) (string, error) { return env.MetricsAddr(name) }

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// snapshot is the metrics of several processes, each read once.
type snapshot []map[string]*dto.MetricFamily

func scrape(addrs []string) (snapshot, error) {
	var out snapshot
	for _, a := range addrs {
		b, err := get("http://" + a + "/metrics")
		if err != nil {
			return nil, err
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("metrics of %s: %w", a, err)
		}
		out = append(out, mfs)
	}
	return out, nil
}

// hist is a Prometheus histogram summed over processes and series.
type hist struct {
	bounds []float64
	cum    []float64 // cumulative counts per bound
	count  float64
	sum    float64
}

// hist adds up histogram name over the processes and its series.
func (s snapshot) hist(name string) hist {
	var h hist
	for _, mfs := range s {
		for _, m := range mfs[name].GetMetric() {
			h.add(m.GetHistogram())
		}
	}
	return h
}

// requests sums rotor_kube_requests_total by "host method" (host is the
// apiserver's host:port).
func (s snapshot) requests() map[string]float64 {
	out := map[string]float64{}
	for _, mfs := range s {
		for _, m := range mfs["rotor_kube_requests_total"].GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			key := l["host"] + " " + l["method"]
			if c := l["code"]; c != "" && c[0] != '2' {
				key += " " + c // refusals apart: "PUT 409" is a lost conflict
			}
			out[key] += m.GetCounter().GetValue()
		}
	}
	return out
}

func (h *hist) add(d *dto.Histogram) {
	if h.bounds == nil {
		for _, b := range d.GetBucket() {
			h.bounds = append(h.bounds, b.GetUpperBound())
		}
		h.cum = make([]float64, len(h.bounds))
	}
	for i, b := range d.GetBucket() {
		h.cum[i] += float64(b.GetCumulativeCount())
	}
	h.count += float64(d.GetSampleCount())
	h.sum += d.GetSampleSum()
}

// since is what was observed between o and h.
func (h hist) since(o hist) hist {
	d := hist{bounds: h.bounds, cum: make([]float64, len(h.cum)), count: h.count - o.count, sum: h.sum - o.sum}
	for i := range h.cum {
		d.cum[i] = h.cum[i]
		if i < len(o.cum) {
			d.cum[i] -= o.cum[i]
		}
	}
	return d
}

// quantile interpolates linearly inside the bucket that holds rank q.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, b := range h.bounds {
		if h.cum[i] >= rank {
			in := h.cum[i] - below
			if in == 0 {
				return b
			}
			return lower + (b-lower)*(rank-below)/in
		}
		lower, below = b, h.cum[i]
	}
	return math.Inf(1) // beyond the last bucket
}

// mem is a process's memory: live heap after a GC (HeapAlloc), heap in
// use (HeapInuse) and resident set size.
type mem struct {
	Name      string  `json:"name"`
	LiveMiB   float64 `json:"liveHeapMiB"`
	InuseMiB  float64 `json:"heapInUseMiB"`
	RSSMiB    float64 `json:"rssMiB"`
	Workflows int     `json:"workflows,omitempty"`
}

func readMem(env *harness.Env, name string) (mem, error) {
	m := mem{Name: name}
	a, err := addr(env, name)
	if err != nil {
		return m, err
	}
	b, err := get("http://" + a + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		for prefix, into := range map[string]*float64{"# HeapAlloc = ": &m.LiveMiB, "# HeapInuse = ": &m.InuseMiB} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return m, err
				}
				*into = n / (1 << 20)
			}
		}
	}
	p, err := env.Process(name)
	if err != nil {
		return m, err
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			m.RSSMiB = kb / 1024
		}
	}
	if m.LiveMiB == 0 || m.RSSMiB == 0 {
		return m, fmt.Errorf("no heap or RSS figures for %s", name)
	}
	return m, nil
}

// shardMap reads the published shard map.
func shardMap(ctx context.Context, c *clientv3.Client) (shardproto.Map, error) {
	doc, err := harness.ShardMap(ctx, c)
	if err != nil {
		return nil, err
	}
	return doc.Map, nil
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// cpuSeconds reads the CPU time (user + system) each process of the
// environment has used so far.
func cpuSeconds(env *harness.Env) map[string]float64 {
	out := map[string]float64{}
	for _, p := range env.Processes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[p.Name] = (ut + st) / 100 // USER_HZ
	}
	return out
}

// start brings up a sharded environment on the kwok runtime under dir
// and waits until the shard map gives partitions to each of its
// replicas; stop ends it.
func start(ctx context.Context, dir string, opts harness.Options) (*harness.Env, *clientv3.Client, func(), error) {
	opts.Runtime, opts.Sharded, opts.PlainEtcd = localcluster.RuntimeKwok, true, true
	env, err := harness.Start(ctx, dir, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{env.EtcdEndpoint}})
	if err != nil {
		env.Stop()
		return nil, nil, nil, err
	}
	stop := func() { etcd.Close(); env.Stop() }
	if _, err := harness.WaitShardMap(ctx, etcd, opts.Replicas, 60*time.Second); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return env, etcd, stop, nil
}
