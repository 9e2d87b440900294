package chart

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

const (
	upgradeWorkflows = 300
	upgradeTag       = "e2e-v2"
)

// readyWatch follows the propeller pods and keeps the fewest Ready at
// once and the most not Ready (starting, stopping or gone) at once.
type readyWatch struct {
	mu               sync.Mutex
	fewest, mostDown int
	stop             chan struct{}
	ready            map[string]bool
	// synced: counting starts once the watch has listed every pod (the
	// initial adds arrive one by one).
	synced bool
}

func watchPropellerReady(t *testing.T) *readyWatch {
	t.Helper()
	w := &readyWatch{fewest: replicas, stop: make(chan struct{}), ready: map[string]bool{}}
	f := informers.NewSharedInformerFactoryWithOptions(env.Kube, 0, informers.WithNamespace(localcluster.RotorNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "app.kubernetes.io/component=propeller" }))
	inf := f.Core().V1().Pods().Informer()
	update := func(o any) {
		p, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.ready[p.Name] = p.DeletionTimestamp == nil && podReady(p)
		if w.synced {
			w.count()
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: update, UpdateFunc: func(_, o any) { update(o) },
		DeleteFunc: func(o any) {
			if p, ok := o.(*corev1.Pod); ok {
				p = p.DeepCopy()
				p.Status.Conditions = nil
				update(p)
			}
		},
	})
	f.Start(w.stop)
	if !cache.WaitForCacheSync(w.stop, inf.HasSynced) {
		t.Fatal("propeller pod watch did not sync")
	}
	w.mu.Lock()
	w.synced = true
	w.count()
	w.mu.Unlock()
	return w
}

// count records the Ready replicas now; the caller holds mu.
func (w *readyWatch) count() {
	n := 0
	for _, r := range w.ready {
		if r {
			n++
		}
	}
	w.fewest = min(w.fewest, n)
	w.mostDown = max(w.mostDown, replicas-n)
}

func (w *readyWatch) end() (fewest, mostDown int) {
	close(w.stop)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fewest, w.mostDown
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// testUpgrade is the seed's zero-downtime upgrade: helm upgrade to a new
// image tag while 300 workflows run. The StatefulSet rolls one replica at
// a time, each handing its partitions over on SIGTERM; no workflow is
// lost, no attempt gets two pods, no retry is spent. The pause of every
// handed-over partition is reported.
func testUpgrade(t *testing.T) {
	ctx := context.Background()
	etcd := env.Etcd(t)
	ledger := watchTaskPods(t)
	handoffs := harness.RecordHandoffs(etcd)
	ready := watchPropellerReady(t)
	namespaces := env.SubmitIn(t, chainOf("2"), "upgrade", 20, upgradeWorkflows/20)
	if _, err := env.PushImages(ctx, filepath.Join(env.RepoRoot, "bin", "images"), upgradeTag); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := env.UpgradeChart(ctx, filepath.Join(env.RepoRoot, "charts"), map[string]any{
		"manager":   map[string]any{"image": map[string]any{"tag": upgradeTag}},
		"propeller": map[string]any{"image": map[string]any{"tag": upgradeTag}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.WaitRotorPods(ctx, 5*time.Minute, replicas); err != nil {
		t.Fatal(err)
	}
	rolled := time.Since(start)
	if sec, err := env.Kube.CoreV1().Secrets(localcluster.RotorNamespace).Get(ctx, "rotor-manager-webhook", metav1.GetOptions{}); err != nil ||
		len(webhookCA) == 0 || !bytes.Equal(sec.Data["ca.crt"], webhookCA) {
		t.Fatalf("after the upgrade the webhook's CA changed or is gone (%v): the chart must keep its certificate (lookup)", err)
	}
	for _, p := range append(rotorPods(t, "manager"), rotorPods(t, "propeller")...) {
		if img := p.Spec.Containers[0].Image; !strings.HasSuffix(img, ":"+upgradeTag) {
			t.Fatalf("pod %s still runs %s after the upgrade", p.Name, img)
		}
	}
	wfs := waitAllEnded(t, namespaces, upgradeWorkflows, 10*time.Minute)
	pauses, takeovers := handoffs.Stop()
	fewest, mostDown := ready.end()
	nodes := checkOneAttemptEach(t, wfs)
	doubles, pods := ledger.doubles("wf-")
	t.Logf("upgrade: rolled in %s; %d workflows, %d nodes, %d task pods, all Succeeded with one attempt each", rolled.Round(time.Millisecond), len(wfs), nodes, pods)
	t.Logf("upgrade: %d partitions handed over, pause p50 %s, max %s; %d taken over; fewest Ready replicas %d, most down at once %d",
		len(pauses), quantile(pauses, 0.5).Round(time.Millisecond), quantile(pauses, 1).Round(time.Millisecond), takeovers, fewest, mostDown)
	if pods < nodes {
		t.Fatalf("saw %d task pods for %d nodes: the pod watch missed some", pods, nodes)
	}
	if len(doubles) > 0 {
		t.Fatalf("%d attempts had two pods: %v", len(doubles), doubles)
	}
	if len(pauses) == 0 {
		t.Fatal("no partition was handed over: the StatefulSet did not roll the replicas through SIGTERM")
	}
	if takeovers > 0 {
		t.Fatalf("%d partitions were taken over after a lease ran out instead of handed over", takeovers)
	}
	if mostDown > 1 {
		t.Fatalf("%d replicas were down at once: the roll must go one at a time", mostDown)
	}
	if max := quantile(pauses, 1); max > 10*time.Second {
		t.Fatalf("a partition paused %s in its handoff, more than 10 s", max)
	}
}

// waitReplicas waits until the propeller StatefulSet wants n replicas.
func waitReplicas(t *testing.T, n int32, timeout time.Duration) {
	t.Helper()
	var got int32 = -1
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		s, err := env.Kube.AppsV1().StatefulSets(localcluster.RotorNamespace).Get(ctx, "rotor-propeller", metav1.GetOptions{})
		if err != nil || s.Spec.Replicas == nil {
			return false, nil
		}
		got = *s.Spec.Replicas
		return got == n, nil
	})
	if err != nil {
		t.Fatalf("propeller StatefulSet wants %d replicas after %s, want %d", got, timeout, n)
	}
}
