package sharding

import (
	"context"
	"net/http"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/e2e/harness"
	"github.com/rotor-dev/rotor/internal/localcluster"
)

// TestMetricsBehindKubernetesAuth: with --metrics-auth a replica and a
// manager serve /metrics over HTTPS to callers RBAC allows (a
// ServiceAccount bound to get on the /metrics non-resource URL) and to no
// one else: no token 401, a token without the grant 403 naming the verb
// and URL; /healthz stays open for the kubelet; /debug/pprof needs its own
// grant.
func TestMetricsBehindKubernetesAuth(t *testing.T) {
	opts := localcluster.ShardingOptions{ManagerArgs: []string{"--metrics-auth"}, ReplicaArgs: []string{"--metrics-auth"}}
	env := harness.New(t, harness.Options{Targets: 1, Runtime: localcluster.RuntimeKwok, Replicas: 1, Sharded: true, Managers: 1, Sharding: opts})
	ctx := context.Background()
	const ns = "monitoring"
	if err := env.CreateNamespaces(ctx, ns); err != nil {
		t.Fatal(err)
	}
	scraper, nobody := env.ServiceAccountToken(t, ns, "scraper"), env.ServiceAccountToken(t, ns, "nobody")
	if _, err := env.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "scraper", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, proc := range []string{"rotor-propeller-0", "rotor-manager-0"} {
		addr, err := env.MetricsAddr(proc)
		if err != nil {
			t.Fatal(err)
		}
		harness.CheckMetricsAuth(t, proc, addr, scraper, nobody, "system:serviceaccount:monitoring:nobody")
		// pprof needs its own grant, which the scraper lacks.
		if code, body := harness.ScrapeGet(t, addr, "/debug/pprof/", scraper); code != 403 || !strings.Contains(body, "may not get /debug/pprof/") {
			t.Errorf("%s: GET /debug/pprof/ as the scraper: %d %.200q; want 403 naming /debug/pprof/", proc, code, body)
		}
	}
	// Go's TLS server answers plain HTTP with 400, never the content.
	resp, err := http.Get("http://" + mustAddr(t, env, "rotor-propeller-0") + "/metrics")
	if err != nil {
		t.Fatalf("plain HTTP /metrics: %v; want a 400 answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP /metrics: %s, want 400 (HTTPS only)", resp.Status)
	}
}

func mustAddr(t *testing.T, env *harness.Env, proc string) string {
	t.Helper()
	addr, err := env.MetricsAddr(proc)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
