package sharding

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
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
	token := func(sa string) string {
		t.Helper()
		if _, err := env.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := env.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s: %v", sa, err)
		}
		return tr.Status.Token
	}
	scraper, nobody := token("scraper"), token("nobody")
	if _, err := env.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "scraper", Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A self-signed certificate: what a scraper verifies is the token's
	// grant, not the server (Prometheus' insecure_skip_verify).
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(addr, path, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET https://%s%s: %v", addr, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, proc := range []string{"rotor-propeller-0", "rotor-manager-0"} {
		addr, err := env.MetricsAddr(proc)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			path, who, token string
			code             int
			body             string
		}{
			{"/healthz", "no one", "", 200, "ok"},
			{"/metrics", "no one", "", 401, "send a bearer token"},
			{"/metrics", "nobody", nobody, 403, `user "system:serviceaccount:monitoring:nobody" may not get /metrics`},
			{"/metrics", "scraper", scraper, 200, "rotor_"},
			{"/debug/pprof/", "scraper", scraper, 403, "may not get /debug/pprof/"},
		} {
			if code, body := get(addr, tc.path, tc.token); code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("%s: GET %s as %s: %d %.200q; want %d containing %q", proc, tc.path, tc.who, code, body, tc.code, tc.body)
			}
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
