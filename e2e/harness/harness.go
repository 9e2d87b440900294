// Package harness starts real local clusters for Rotor's end-to-end tests:
// one etcd, a control cluster, N target clusters with schedulers and fake
// nodes, Rotor's CRDs, and optionally Rotor itself. Every component's log
// is kept under the test's folder and its location printed on failure.
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	versioned "github.com/rotor-dev/rotor/controller/generated/clientset/versioned"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/plugins/pod"
	"github.com/rotor-dev/rotor/shardproto"
)

// Options configure an environment.
type Options struct {
	Targets  int
	Runtime  localcluster.Runtime
	Replicas int
	// NoRotor starts only the clusters.
	NoRotor bool
	// Sharded runs Managers rotor-manager instances and the replicas in
	// sharded mode.
	Sharded  bool
	Managers int
	// PlainEtcd serves etcd without auth, and without TLS unless Chart
	// (the chart sandbox always has TLS). Otherwise the etcd of a
	// sharded or chart environment wants client certificates and has
	// auth on, with the components' own users and roles (package
	// etcdroles), as the install guide asks of a production etcd: every
	// sharded test then also proves the roles cover what Rotor does. The
	// benchmarks and the chaos soak set it: their etcd clients and
	// proxies speak plaintext, and the benchmarks compare with figures
	// measured so.
	PlainEtcd bool
	// DataPlane starts the S3 server and gives the propellers the
	// raw-data location (localcluster.StartDataPlane).
	DataPlane bool
	Sharding  localcluster.ShardingOptions
	// PropellerArgs are extra flags for unsharded propellers.
	PropellerArgs []string
	// SpareReplicas is how many more replica identities than Replicas
	// to create, for replicas started later (default 2).
	SpareReplicas int
	// Chart installs Rotor with its Helm chart instead of starting its
	// processes: the control cluster runs pods on ControlNodes nodes
	// (default 2) from the images `make image` left in bin/images, with
	// ChartValues over the sandbox's values.
	Chart bool
	// TargetAuditLog keeps the targets' audit logs of writes
	// (ClusterInfo.AuditLog).
	TargetAuditLog bool
	ControlNodes   int
	ChartValues    map[string]any
	// ChartPropellers is how many propeller replicas must be Ready before
	// the install counts as done (0: what the StatefulSet says).
	ChartPropellers int32
}

// ImageTag is the tag the harness pushes Rotor's images under.
const ImageTag = "e2e"

// UserTenant is the identity that submits workflows in a chart
// environment (a data team's user, not an administrator of Rotor).
const UserTenant = "tenant"

// Env is a running environment with admin clients.
type Env struct {
	*localcluster.Env
	Kube     kubernetes.Interface
	Rotor    versioned.Interface
	Targets  []kubernetes.Interface
	Started  time.Duration
	RepoRoot string
}

// RepoRoot finds the repository root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/rotor-dev/rotor\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the rotor repository")
		}
		dir = parent
	}
}

// Start brings an environment up in dir and returns it. The caller stops
// it. Used by TestMain, where there is no *testing.T.
func Start(ctx context.Context, dir string, opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(root, "bin")
	if v := os.Getenv("ROTOR_BIN_DIR"); v != "" {
		bin = v
	}
	var users []string
	if opts.SpareReplicas == 0 {
		opts.SpareReplicas = 2
	}
	for i := 0; i < opts.Replicas+opts.SpareReplicas; i++ {
		users = append(users, fmt.Sprintf("rotor-propeller-%d", i))
	}
	if opts.Chart {
		users = append(users, UserTenant)
	}
	start := time.Now()
	lo := localcluster.Options{
		Dir: dir, BinDir: bin, CRDDir: filepath.Join(root, "charts", "rotor", "crds"),
		Targets: opts.Targets, Runtime: opts.Runtime, Users: users, AuditLog: true, TargetAuditLog: opts.TargetAuditLog,
	}
	if (opts.Sharded || opts.Chart) && !opts.PlainEtcd {
		lo.EtcdTLS, lo.EtcdAuth = true, true
	}
	if opts.Chart {
		// The chart installs the CRDs itself.
		lo.CRDDir, lo.ControlNodes, lo.EtcdTLS = "", max(opts.ControlNodes, 2), true
	}
	le, err := localcluster.Start(ctx, lo)
	if err != nil {
		return nil, err
	}
	e := &Env{Env: le, Started: time.Since(start), RepoRoot: root}
	if e.Kube, e.Rotor, err = le.Clients(); err != nil {
		le.Stop()
		return nil, err
	}
	for i := range le.Targets {
		tc, err := le.TargetClient(i)
		if err != nil {
			le.Stop()
			return nil, err
		}
		e.Targets = append(e.Targets, tc)
	}
	if opts.DataPlane {
		if _, err := le.StartDataPlane(ctx); err != nil {
			le.Stop()
			return nil, err
		}
	}
	if opts.NoRotor {
		return e, nil
	}
	if opts.Chart {
		err := le.InstallChart(ctx, localcluster.ChartOptions{
			ChartDir: filepath.Join(root, "charts"), ImageLayout: filepath.Join(bin, "images"),
			ImageTag: ImageTag, Values: opts.ChartValues, Propellers: opts.ChartPropellers,
		})
		if err != nil {
			le.Stop()
			return nil, err
		}
		e.Started = time.Since(start)
		return e, nil
	}
	if err := le.RegisterTargets(ctx); err != nil {
		le.Stop()
		return nil, err
	}
	for i := 0; i < opts.Managers && opts.Sharded; i++ {
		if _, err := le.StartManager(i, opts.Sharding); err != nil {
			le.Stop()
			return nil, err
		}
	}
	for i := 0; i < opts.Replicas; i++ {
		start := le.StartPropeller
		if opts.Sharded {
			start = func(i int, _ ...string) (*localcluster.Process, error) {
				return le.StartShardedPropeller(i, opts.Sharding)
			}
		}
		if _, err := start(i, opts.PropellerArgs...); err != nil {
			le.Stop()
			return nil, err
		}
	}
	return e, nil
}

// New starts an environment for one test, stopped at its end. On failure
// it prints where every log is and the end of the Rotor logs; with
// ROTOR_E2E_KEEP set it keeps the logs of a passing test too.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	dir, err := os.MkdirTemp("", "rotor-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Start(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("start environment (logs in %s): %v", filepath.Join(dir, "logs"), err)
	}
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			e.Report(t)
			return
		}
		if os.Getenv("ROTOR_E2E_KEEP") != "" {
			t.Logf("ROTOR_E2E_KEEP: logs kept in %s", filepath.Join(dir, "logs"))
			return
		}
		_ = os.RemoveAll(dir)
	})
	return e
}

// Report prints where the logs are, and the tail of each Rotor log
// (those of Rotor's pods too, where the node agents keep them).
func (e *Env) Report(t testing.TB) {
	t.Logf("component logs are in %s", filepath.Join(e.Dir, "logs"))
	podLogs, _ := filepath.Glob(filepath.Join(e.Dir, "data", "nodes", "control-node-*", localcluster.RotorNamespace, "*", "*", "log"))
	for _, l := range append(e.Logs(), podLogs...) {
		if strings.Contains(filepath.Base(l), "rotor-") || strings.HasSuffix(l, "/log") {
			b, _ := os.ReadFile(l)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- end of %s ---\n%s", l, b)
		}
	}
}

// Target returns the client of the target cluster with that name (the
// name of its Cluster object), or nil.
func (e *Env) Target(name string) kubernetes.Interface {
	for i, c := range e.Env.Targets {
		if c.Name == name {
			return e.Targets[i]
		}
	}
	return nil
}

// ClusterPod is a pod and the target cluster it is in.
type ClusterPod struct {
	Cluster string
	corev1.Pod
}

// TaskPods lists the pods of namespace ns matching selector ("" for all)
// in every target cluster: placement spreads attempts over them.
func (e *Env) TaskPods(t testing.TB, ns, selector string) []ClusterPod {
	t.Helper()
	var out []ClusterPod
	for i, c := range e.Env.Targets {
		pods, err := e.Targets[i].CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			t.Fatalf("list pods of %s in %s: %v", ns, c.Name, err)
		}
		for _, p := range pods.Items {
			out = append(out, ClusterPod{Cluster: c.Name, Pod: p})
		}
	}
	return out
}

// WaitWorkflow polls a workflow until done says so, and returns it; on a
// timeout it reports the logs and fails the test with the last status.
func (e *Env) WaitWorkflow(t testing.TB, wf *v1alpha1.Workflow, timeout time.Duration, done func(*v1alpha1.Workflow) bool) *v1alpha1.Workflow {
	t.Helper()
	var got *v1alpha1.Workflow
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		w, err := e.Rotor.RotorV1alpha1().Workflows(wf.Namespace).Get(ctx, wf.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = w
		return done(w), nil
	})
	if err != nil {
		e.Report(t)
		b, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("workflow %s/%s: not there after %s; last seen:\n%s", wf.Namespace, wf.Name, timeout, b)
	}
	return got
}

// Ended reports whether a workflow reached a terminal phase.
func Ended(wf *v1alpha1.Workflow) bool { return wf.Status.Phase.IsTerminal() }

// WaitWorkflows polls every workflow until at least want have ended, and
// returns them all; on a timeout it reports the logs and fails the test.
func (e *Env) WaitWorkflows(t testing.TB, want int, timeout time.Duration) []v1alpha1.Workflow {
	t.Helper()
	var items []v1alpha1.Workflow
	done := 0
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := e.Rotor.RotorV1alpha1().Workflows("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		items, done = list.Items, 0
		for i := range items {
			if Ended(&items[i]) {
				done++
			}
		}
		return done >= want, nil
	})
	if err != nil {
		e.Report(t)
		t.Fatalf("%d of %d workflows ended after %s", done, want, timeout)
	}
	return items
}

// PodSample is what SampleActivePods saw per target.
type PodSample struct {
	// Most is the most task pods active (not finished, not being deleted)
	// at once.
	Most map[string]int
	// Samples counts the lists that answered; Errors those that failed.
	Samples, Errors map[string]int
}

// Check fails t unless every target answered at least minSamples lists
// and at most a tenth of the lists failed: a sample that saw nothing
// proves nothing about a cap.
func (s PodSample) Check(t testing.TB, minSamples int) {
	t.Helper()
	for name, n := range s.Samples {
		if n < minSamples {
			t.Errorf("target %s: %d pod lists answered during the run (%d failed), want at least %d", name, n, s.Errors[name], minSamples)
		}
		if e := s.Errors[name]; e*10 > n+e {
			t.Errorf("target %s: %d of %d pod lists failed", name, e, n+e)
		}
	}
	if len(s.Samples) == 0 {
		t.Error("no target was sampled")
	}
}

// SampleActivePods polls every target's task pods in namespace ns ("" for
// all) every 20 ms until stop is closed. The function it returns waits for
// the sampling to end and gives, per target, the most pods that were
// active at once and how many lists answered and failed.
func (e *Env) SampleActivePods(ns string, stop <-chan struct{}) func() PodSample {
	var mu sync.Mutex
	out := PodSample{Most: map[string]int{}, Samples: map[string]int{}, Errors: map[string]int{}}
	var wg sync.WaitGroup
	for i, c := range e.Env.Targets {
		out.Samples[c.Name] = 0
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				pods, err := e.Targets[i].CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: pod.LabelManaged + "=true"})
				cancel()
				if err != nil {
					mu.Lock()
					out.Errors[c.Name]++
					mu.Unlock()
					continue
				}
				n := 0
				for _, p := range pods.Items {
					if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil {
						n++
					}
				}
				mu.Lock()
				out.Samples[c.Name]++
				out.Most[c.Name] = max(out.Most[c.Name], n)
				mu.Unlock()
			}
		})
	}
	return func() PodSample {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return out
	}
}

var metricsAddrRE = regexp.MustCompile(`"msg":"serving metrics and health","addr":"([^"]+)"`)

// MetricsAddr finds where a Rotor process (rotor-propeller-0,
// rotor-manager-1, …) serves /metrics, /healthz and /readyz, from the
// address it logged; it waits up to 30 s for the line.
func (e *Env) MetricsAddr(name string) (string, error) {
	p, err := e.Process(name)
	if err != nil {
		return "", err
	}
	log := p.Log
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(log); err == nil {
			if m := metricsAddrRE.FindSubmatch(b); m != nil {
				return string(m[1]), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("%s logged no metrics address in 30 s (log: %s)", name, log)
}

// Etcd connects to the environment's etcd (with its client certificate
// when it serves TLS), closed at the end of the test.
func (e *Env) Etcd(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := e.EtcdClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ShardMap reads the shard map the sandbox's managers published, or
// fails if none is there yet.
func ShardMap(ctx context.Context, c *clientv3.Client) (*shardproto.Doc, error) {
	resp, err := c.Get(ctx, shardproto.Keys{Prefix: localcluster.ShardPrefix}.Map())
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("no shard map published yet")
	}
	return shardproto.Decode(resp.Kvs[0].Value)
}

// WaitShardMap polls the shard map until it gives every partition to one
// of exactly n owners with nothing moving, and returns it.
func WaitShardMap(ctx context.Context, c *clientv3.Client, n int, timeout time.Duration) (*shardproto.Doc, error) {
	var doc *shardproto.Doc
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := ShardMap(ctx, c)
		if err != nil {
			return false, nil
		}
		doc = d
		owners := map[string]bool{}
		for _, p := range d.Map {
			if p.Owner == "" {
				return false, nil
			}
			owners[p.Owner] = true
		}
		return d.Map.Moving() == 0 && len(owners) == n, nil
	})
	if err != nil {
		return doc, fmt.Errorf("shard map not stable over %d owners after %s (last: %+v)", n, timeout, doc)
	}
	return doc, nil
}

// EditCluster applies edit to the Cluster object name and updates it,
// reading it again when the write conflicts (the prober writes status).
func (e *Env) EditCluster(ctx context.Context, name string, edit func(*v1alpha1.Cluster)) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		c, err := e.Rotor.RotorV1alpha1().Clusters().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		edit(c)
		_, err = e.Rotor.RotorV1alpha1().Clusters().Update(ctx, c, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("edit cluster %s: %w", name, err)
	}
	return nil
}

// SubmitIn submits per copies of spec (a Workflow in YAML whose name is
// NAME) in each of the namespaces PREFIX-00, PREFIX-01, ..., creating
// them, and returns the namespaces. All at once, so that the whole batch
// is running when a test disturbs it, rather than its first half already
// finished.
func (e *Env) SubmitIn(t testing.TB, spec, prefix string, namespaces, per int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for n := 0; n < namespaces; n++ {
		names = append(names, fmt.Sprintf("%s-%02d", prefix, n))
	}
	if err := e.CreateNamespaces(ctx, names...); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.SetLimit(16)
	for _, ns := range names {
		for i := 0; i < per; i++ {
			g.Go(func() error {
				wf := &v1alpha1.Workflow{}
				if err := manifest.Unmarshal([]byte(strings.Replace(spec, "NAME", fmt.Sprintf("wf-%02d", i), 1)), wf); err != nil {
					return err
				}
				_, err := e.Rotor.RotorV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{})
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return names
}

// Handoffs records, from a watch on the shard map, when each partition
// was asked to move (its owner told to release it) and when it got its
// new owner: a graceful handoff's pause. A partition that changes owner
// without having been asked first was taken over (its owner's lease
// ended).
type Handoffs struct {
	mu       sync.Mutex
	asked    map[int]time.Time
	pauses   []time.Duration
	takeover int
	stop     func()
	done     chan struct{}
}

// RecordHandoffs watches the sandbox's shard map until Stop.
func RecordHandoffs(c *clientv3.Client) *Handoffs {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handoffs{asked: map[int]time.Time{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		var last *shardproto.Doc
		for resp := range c.Watch(ctx, shardproto.Keys{Prefix: localcluster.ShardPrefix}.Map()) {
			for _, ev := range resp.Events {
				doc, err := shardproto.Decode(ev.Kv.Value)
				if err != nil {
					continue
				}
				h.step(last, doc, time.Now())
				last = doc
			}
		}
	}()
	return h
}

func (h *Handoffs) step(last, doc *shardproto.Doc, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, p := range doc.Map {
		if p.Releasing() {
			if _, ok := h.asked[i]; !ok {
				h.asked[i] = now
			}
			continue
		}
		if last == nil || i >= len(last.Map) || last.Map[i].Owner == p.Owner || last.Map[i].Owner == "" {
			continue
		}
		if at, ok := h.asked[i]; ok {
			h.pauses = append(h.pauses, now.Sub(at))
			delete(h.asked, i)
		} else {
			h.takeover++
		}
	}
}

// Stop ends the watch and returns the pause of every graceful handoff
// seen and the number of takeovers.
func (h *Handoffs) Stop() ([]time.Duration, int) {
	h.stop()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.pauses...), h.takeover
}
