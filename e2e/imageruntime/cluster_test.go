package imageruntime

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/internal/nodeagent"
	"github.com/rotor-dev/rotor/internal/nodeagent/backoff"
)

const podCIDR = "127.77.0.0/16"

// startCluster starts etcd and the control cluster's kube-apiserver and
// returns a client of it.
func startCluster(t *testing.T, dir string) (*localcluster.Env, kubernetes.Interface) {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin"))
	if err != nil {
		t.Fatal(err)
	}
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
	return env, client(t, env)
}

// client is a client of the control cluster without client-side
// throttling to speak of: the agent shares nothing with the test's client,
// and client-go's default 5 QPS would slow every pod start.
func client(t *testing.T, env *localcluster.Env) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Control.Kubeconfig)
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

// setupNamespace creates what the cluster's controllers would: the
// namespace's kube-root-ca.crt, and the pods' service account with the
// right to read pods.
func setupNamespace(t *testing.T, cs kubernetes.Interface, caPEM []byte) {
	t.Helper()
	ctx := context.Background()
	objs := []func() error{
		func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
				Data: map[string]string{"ca.crt": string(caPEM)}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-pods"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-pods"},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-pods"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: namespace}}}, metav1.CreateOptions{})
			return err
		},
	}
	for _, create := range objs {
		if err := create(); err != nil {
			t.Fatalf("set up namespace %s: %v", namespace, err)
		}
	}
}

// agent is a node agent in image mode running in this process.
type agent struct {
	cancel context.CancelFunc
	done   chan error
	log    string
}

// startAgent runs an agent on nodeName and waits for its Node to be Ready.
func startAgent(t *testing.T, cs kubernetes.Interface, env *localcluster.Env, dir, logName string) *agent {
	t.Helper()
	u, err := url.Parse(env.Control.Server)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, logName)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{cancel: cancel, done: make(chan error, 1), log: logPath}
	na := nodeagent.New(client(t, env), nodeagent.Config{
		NodeName: nodeName, WorkDir: filepath.Join(dir, "node"), HeartbeatInterval: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Image: &nodeagent.ImageConfig{
			ImageDir: filepath.Join(dir, "images"), PodCIDR: podCIDR,
			KubeServiceHost: u.Hostname(), KubeServicePort: u.Port(),
			RestartBackoff: backoff.Policy{Initial: 500 * time.Millisecond, Max: 2 * time.Second},
			PullBackoff:    backoff.Policy{Initial: time.Second, Max: 2 * time.Second},
			ShutdownGrace:  5 * time.Second,
		},
	})
	go func() { a.done <- na.Run(ctx) }()
	t.Cleanup(func() { a.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
		if err == nil && nodeIsReady(n) {
			return a
		}
		select {
		case err := <-a.done:
			t.Fatalf("agent exited while starting: %v (log %s)", err, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready within 30s of starting the agent (log %s)", nodeName, logPath)
		}
	}
}

// stop stops the agent and waits for it to have stopped its containers.
func (a *agent) stop(t *testing.T) {
	t.Helper()
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent Run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("agent did not stop within 30s of its context ending (log %s)", a.log)
	}
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// dumpOnFailure prints where the logs are when the test failed.
func dumpOnFailure(t *testing.T, agentLog string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, _ := os.ReadFile(agentLog)
		lines := strings.Split(string(b), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		t.Logf("agent log %s ends:\n%s", agentLog, strings.Join(lines, "\n"))
	})
}
