package harness

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/internal/nodeagent"
)

// StartAPIServer starts etcd and one kube-apiserver (no targets, no
// Rotor) under dir/cluster for the node agent's own tests, and returns
// the environment (stopped when the test ends) and a client of it
// without client-side throttling to speak of: the agent shares nothing
// with the test's client, and client-go's default 5 QPS would slow every
// pod start.
func StartAPIServer(t testing.TB, dir string) (*localcluster.Env, kubernetes.Interface) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("%s missing from %s: run 'make tools' first", b, bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := localcluster.Start(ctx, localcluster.Options{Dir: filepath.Join(dir, "cluster"), BinDir: bin, Targets: 0})
	if err != nil {
		t.Fatalf("start the API server (logs in %s): %v", filepath.Join(dir, "cluster", "logs"), err)
	}
	t.Cleanup(env.Stop)
	return env, UnthrottledClient(t, env.Control.Kubeconfig)
}

// UnthrottledClient is a client from kubeconfig at 100 QPS, burst 200.
func UnthrottledClient(t testing.TB, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// NodeAgent is a node agent running in the test's process (either
// runtime: cfg.Image set or not), logging at debug level to Log.
type NodeAgent struct {
	Log    string
	cancel context.CancelFunc
	done   chan error
	file   *os.File
}

// StartNodeAgent runs a node agent with cfg (Logger is set here) and
// waits (30 s at most) for its Node to be Ready. It is stopped when the
// test ends, if Stop was not called before.
func StartNodeAgent(t testing.TB, cs kubernetes.Interface, cfg nodeagent.Config, logPath string) *NodeAgent {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	a := &NodeAgent{Log: logPath, cancel: cancel, done: make(chan error, 1), file: f}
	na := nodeagent.New(cs, cfg)
	go func() { a.done <- na.Run(ctx) }()
	t.Cleanup(func() { a.Stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), cfg.NodeName, metav1.GetOptions{})
		if err == nil && NodeReady(n) {
			return a
		}
		select {
		case err := <-a.done:
			t.Fatalf("node agent exited while starting: %v (log %s)", err, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready within 30s of starting the agent (log %s)", cfg.NodeName, logPath)
		}
	}
}

// Stop stops the agent and waits (30 s at most) for it to have stopped
// its containers; a second call does nothing.
func (a *NodeAgent) Stop(t testing.TB) {
	t.Helper()
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("node agent Run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("node agent did not stop within 30s of its context ending (log %s)", a.Log)
	}
	a.file.Close()
}

// NodeReady reports whether n's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
