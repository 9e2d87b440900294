package imageruntime

import (
	"context"
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

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
	"github.com/rotor-dev/rotor/internal/nodeagent"
	"github.com/rotor-dev/rotor/internal/nodeagent/backoff"
)

const podCIDR = "127.77.0.0/16"

// startCluster starts etcd and the control cluster's kube-apiserver and
// returns a client of it.
func startCluster(t *testing.T, dir string) (*localcluster.Env, kubernetes.Interface) {
	return harness.StartAPIServer(t, dir)
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

// startAgent runs an image-runtime agent on nodeName, with its own client,
// and waits for its Node to be Ready.
func startAgent(t *testing.T, cs kubernetes.Interface, env *localcluster.Env, dir, logName string) *harness.NodeAgent {
	t.Helper()
	u, err := url.Parse(env.Control.Server)
	if err != nil {
		t.Fatal(err)
	}
	return harness.StartNodeAgent(t, harness.UnthrottledClient(t, env.Control.Kubeconfig), nodeagent.Config{
		NodeName: nodeName, WorkDir: filepath.Join(dir, "node"), HeartbeatInterval: 2 * time.Second,
		Image: &nodeagent.ImageConfig{
			ImageDir: filepath.Join(dir, "images"), PodCIDR: podCIDR,
			KubeServiceHost: u.Hostname(), KubeServicePort: u.Port(),
			RestartBackoff: backoff.Policy{Initial: 500 * time.Millisecond, Max: 2 * time.Second},
			PullBackoff:    backoff.Policy{Initial: time.Second, Max: 2 * time.Second},
			ShutdownGrace:  5 * time.Second,
		},
	}, filepath.Join(dir, logName))
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
