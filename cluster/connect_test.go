package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/internal/silentnet"
)

func kubeconfigFor(server string) []byte {
	return []byte(strings.Replace(testKubeconfig, "https://127.0.0.1:6443", server, 1))
}

// connectRegistry has a control cluster holding a kubeconfig Secret per
// target in servers (name → server URL). Targets whose server is
// "fake://NAME" get an in-memory clientset; the others a real client.
func connectRegistry(t *testing.T, servers map[string]string) *Registry {
	t.Helper()
	control := fake.NewClientset()
	for name, server := range servers {
		_, err := control.CoreV1().Secrets("rotor-system").Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "rotor-system"},
			Data:       map[string][]byte{"kubeconfig": kubeconfigFor(server)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := NewRegistry(control, "rotor-system", nil, slog.Default())
	r.newClient = func(c *rest.Config) (kubernetes.Interface, error) {
		if strings.HasPrefix(c.Host, "fake://") {
			return fake.NewClientset(), nil
		}
		return kubernetes.NewForConfig(c)
	}
	t.Cleanup(r.Stop)
	return r
}

func clusterObj(name string) *v1alpha1.Cluster {
	return &v1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec:       v1alpha1.ClusterSpec{KubeconfigSecretRef: &v1alpha1.SecretKeyRef{Name: name}},
	}
}

func recv(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(3 * time.Second):
		t.Fatal("nothing reached the pod handler")
		return ""
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestSilentClusterDoesNotStallOthers: Clusters are synced one after the
// other, as the Cluster informer's handler delivers them. A target whose
// apiserver accepts connections and never answers comes first; the
// reachable one registered after it must be usable within a deadline,
// while the silent one stays known and not ready.
func TestSilentClusterDoesNotStallOthers(t *testing.T) {
	r := connectRegistry(t, map[string]string{"silent": "https://" + silentnet.Listen(t), "live": "fake://live"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handlerDone := make(chan struct{})
	go func() { // the informer's one handler goroutine
		defer close(handlerDone)
		r.Sync(ctx, clusterObj("silent"))
		r.Sync(ctx, clusterObj("live"))
	}()
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("live"); return ok }) {
		t.Fatal("the reachable cluster has no client 3 s after it was registered: the silent one stalls the Cluster handler")
	}
	select {
	case <-handlerDone:
	case <-time.After(time.Second):
		t.Fatal("Sync of the silent cluster still blocks the Cluster handler")
	}
	if _, ok := r.Get("silent"); ok {
		t.Fatal("the silent cluster has a client before its pod cache synced")
	}
	if h := r.Health("silent"); !h.Known || !h.Unreachable {
		t.Fatalf("health of the silent cluster: %+v, want known and unreachable (no client yet)", h)
	}
	if c, err := r.Pick(attempt("n0"), nil, nil); err != nil || c.Name != "live" {
		t.Fatalf("Pick: %v, %v; want live", c, err)
	}
}

// TestRotatedSecretSwapsOnceSynced: a rotated kubeconfig Secret builds a
// new client and pod cache in the background; the old one stays in use
// until the new cache has synced, so a rotation to an address that does
// not answer leaves the cluster as it was, and fixing the Secret again
// replaces it. Pods already in the new cache reach the pod handler once
// it is in use.
func TestRotatedSecretSwapsOnceSynced(t *testing.T) {
	silent := "https://" + silentnet.Listen(t)
	r := connectRegistry(t, map[string]string{"east": "fake://one"})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func() { mu.Lock(); now = now.Add(secretRecheck); mu.Unlock() }
	clients := map[string]kubernetes.Interface{}
	r.newClient = func(c *rest.Config) (kubernetes.Interface, error) {
		if !strings.HasPrefix(c.Host, "fake://") {
			return kubernetes.NewForConfig(c)
		}
		cs := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-" + c.Host[7:], Namespace: "team",
			Labels: map[string]string{"rotor.dev/managed": "true"}}})
		mu.Lock()
		clients[c.Host] = cs
		mu.Unlock()
		return cs, nil
	}
	seen := make(chan string, 10)
	r.onPod = func(_ string, p *corev1.Pod) { seen <- p.Name }
	rotate := func(server, rv string) {
		sec, _ := r.control.CoreV1().Secrets("rotor-system").Get(context.Background(), "east", metav1.GetOptions{})
		sec.Data["kubeconfig"], sec.ResourceVersion = kubeconfigFor(server), rv
		if _, err := r.control.CoreV1().Secrets("rotor-system").Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		tick()
		r.Sync(context.Background(), clusterObj("east"))
	}
	clientIs := func(host string) func() bool {
		return func() bool {
			c, ok := r.Get("east")
			mu.Lock()
			defer mu.Unlock()
			return ok && clients[host] != nil && c.Client == clients[host]
		}
	}
	r.Sync(context.Background(), clusterObj("east"))
	if !waitFor(3*time.Second, clientIs("fake://one")) {
		t.Fatal("no client from the first Secret")
	}
	if p := recv(t, seen); p != "p-one" {
		t.Fatalf("pod handler got %s, want p-one", p)
	}

	rotate(silent, "2")
	time.Sleep(300 * time.Millisecond) // the silent cache would have synced by now if it could
	if !clientIs("fake://one")() {
		t.Fatal("a rotation to a silent server dropped the working client before the new cache synced")
	}
	if _, err := r.Pick(attempt("n0"), nil, nil); err != nil {
		t.Fatalf("Pick while the rotation syncs: %v", err)
	}

	rotate("fake://two", "3")
	if !waitFor(3*time.Second, clientIs("fake://two")) {
		t.Fatal("fixing the Secret did not replace the client")
	}
	if p := recv(t, seen); p != "p-two" {
		t.Fatalf("pod handler got %s, want p-two (from the new cache)", p)
	}
}

// TestTaintsDoNotRebuildTheClient: a spec change that is not about the
// client (a cordon's taint, a weight) keeps the client and its cache; a
// new QPS builds new ones.
func TestTaintsDoNotRebuildTheClient(t *testing.T) {
	r := connectRegistry(t, map[string]string{"east": "fake://east"})
	c := clusterObj("east")
	r.Sync(context.Background(), c)
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("east"); return ok }) {
		t.Fatal("no client")
	}
	first, _ := r.Get("east")
	c = c.DeepCopy()
	c.Generation, c.Spec.Weight = 2, 5
	c.Spec.Taints = []corev1.Taint{{Key: "rotor.dev/cordon", Effect: corev1.TaintEffectNoSchedule}}
	r.Sync(context.Background(), c)
	time.Sleep(200 * time.Millisecond)
	if got, _ := r.Get("east"); got != first {
		t.Fatal("a taint rebuilt the client")
	}
	c = c.DeepCopy()
	c.Generation, c.Spec.Client.QPS = 3, 10
	r.Sync(context.Background(), c)
	if !waitFor(3*time.Second, func() bool { got, ok := r.Get("east"); return ok && got != first }) {
		t.Fatal("a new QPS kept the old client")
	}
}

// TestDrainWakesItsWorkflows: a drain (a NoExecute taint) changes nothing
// in a cluster's pods, so no pod event brings their workflows back to
// move the attempts that have not started: Sync passes its pods to the
// pod handler itself on a new spec (the client, not rebuilt, would not).
func TestDrainWakesItsWorkflows(t *testing.T) {
	r := connectRegistry(t, map[string]string{"east": "fake://east"})
	r.newClient = func(*rest.Config) (kubernetes.Interface, error) {
		return fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team",
			Labels: map[string]string{"rotor.dev/managed": "true"}}}), nil
	}
	seen := make(chan string, 10)
	r.onPod = func(_ string, p *corev1.Pod) { seen <- p.Name }
	c := clusterObj("east")
	r.Sync(context.Background(), c)
	if p := recv(t, seen); p != "p" { // once its cache is in use
		t.Fatalf("pod handler got %s", p)
	}
	c = c.DeepCopy()
	c.Generation, c.Spec.Taints = 2, []corev1.Taint{{Key: "rotor.dev/drain", Effect: corev1.TaintEffectNoExecute}}
	r.Sync(context.Background(), c)
	select {
	case p := <-seen:
		if p != "p" {
			t.Fatalf("pod handler got %s", p)
		}
	default:
		t.Fatal("the drain passed no pod to the pod handler: their workflows wait for the resync to move them")
	}
	if h := r.Health("east"); !h.Drained {
		t.Fatalf("health %+v, want drained", h)
	}
}

// TestUnreadableSecretKeepsTheClient: when the control apiserver cannot
// answer for a target's kubeconfig Secret (it is restarting), the target
// keeps its client and pod cache; only an answer about the Secret itself
// (it is gone) drops them.
func TestUnreadableSecretKeepsTheClient(t *testing.T) {
	r := connectRegistry(t, map[string]string{"east": "fake://one"})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	r.Sync(context.Background(), clusterObj("east"))
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("east"); return ok }) {
		t.Fatal("no client from the Secret")
	}
	control := r.control.(*fake.Clientset)
	var answer atomic.Value
	answer.Store(error(apierrors.NewServiceUnavailable("the control apiserver is restarting")))
	var reads atomic.Int32
	control.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		reads.Add(1)
		return true, nil, answer.Load().(error)
	})
	recheck := func() {
		mu.Lock()
		now = now.Add(secretRecheck)
		mu.Unlock()
		before := reads.Load()
		r.Sync(context.Background(), clusterObj("east"))
		if !waitFor(3*time.Second, func() bool { return reads.Load() > before }) {
			t.Fatal("the Secret was not read again after secretRecheck")
		}
		time.Sleep(50 * time.Millisecond) // the refresh acts on its read
	}
	recheck()
	if _, ok := r.Get("east"); !ok {
		t.Fatal("an unavailable control apiserver dropped the target's client")
	}
	answer.Store(error(apierrors.NewNotFound(corev1.Resource("secrets"), "east")))
	recheck()
	if _, ok := r.Get("east"); ok {
		t.Fatal("a Secret that is gone kept its client")
	}
}

// TestConnectingListsTargetsWithoutAPodCacheYet: what an unsharded
// replica just started waits for. Declared Clusters the handler has not
// reached yet and those whose cache is still listing are connecting; one
// in use is not, nor one the prober reports unreachable.
func TestConnectingListsTargetsWithoutAPodCacheYet(t *testing.T) {
	r := connectRegistry(t, map[string]string{"silent": "https://" + silentnet.Listen(t), "live": "fake://live"})
	r.Declare([]*v1alpha1.Cluster{clusterObj("live"), clusterObj("silent")})
	if got := r.Connecting(); strings.Join(got, ",") != "live,silent" {
		t.Fatalf("Connecting before any Sync: %v, want [live silent]", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Sync(ctx, clusterObj("silent"))
	r.Sync(ctx, clusterObj("live"))
	if !waitFor(3*time.Second, func() bool { _, ok := r.Get("live"); return ok }) {
		t.Fatal("live has no client 3 s after Sync")
	}
	if got := r.Connecting(); strings.Join(got, ",") != "silent" {
		t.Fatalf("Connecting with live in use: %v, want [silent]", got)
	}
	off := clusterObj("silent")
	off.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ClusterReachable, Status: metav1.ConditionFalse,
		LastTransitionTime: metav1.Now(), Reason: "ProbeFailed"}}
	r.Sync(ctx, off)
	if got := r.Connecting(); len(got) != 0 {
		t.Fatalf("Connecting with silent reported unreachable: %v, want none", got)
	}
}
