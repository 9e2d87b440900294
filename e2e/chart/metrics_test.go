package chart

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// checkMetricsAuth: with metrics.auth, every manager and propeller pod
// serves /metrics over HTTPS to the callers RBAC allows: no token is 401,
// a ServiceAccount without the chart's metrics-reader ClusterRole 403, one
// bound to it 200 with Rotor's series; /healthz stays open, as the
// kubelet (here the node agent, over HTTPS) probes it without a token, and
// the pods' readiness already proved that.
func checkMetricsAuth(t *testing.T, pods []corev1.Pod) {
	t.Helper()
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
			t.Fatalf("token for %s/%s: %v", ns, sa, err)
		}
		return tr.Status.Token
	}
	reader, nobody := token("prometheus"), token("nobody")
	if _, err := env.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-prometheus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "rotor-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each process serves a self-signed certificate made at its start
	// (no metrics.tls given): what is checked here is who may read, not
	// who serves.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(url, bearer string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if len(pods) == 0 {
		t.Fatal("no Rotor pods to scrape")
	}
	for _, p := range pods {
		port := 0
		for _, cp := range p.Spec.Containers[0].Ports {
			if cp.Name == "metrics" {
				port = int(cp.ContainerPort)
			}
		}
		if port == 0 || p.Status.PodIP == "" {
			t.Fatalf("pod %s: metrics port %d, IP %q", p.Name, port, p.Status.PodIP)
		}
		base := "https://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))
		// A new grant reaches the manager's decision cache within its
		// denied-for-10 s window at worst: wait for it with a deadline.
		deadline := time.Now().Add(20 * time.Second)
		code, body := get(base+"/metrics", reader)
		for code != http.StatusOK && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			code, body = get(base+"/metrics", reader)
		}
		if code != http.StatusOK || !strings.Contains(body, "rotor_") {
			t.Errorf("pod %s: /metrics with the reader's token: %d (%d bytes), want 200 with rotor_ series", p.Name, code, len(body))
		}
		for _, c := range []struct {
			who, token string
			want       int
		}{{"no token", "", http.StatusUnauthorized}, {"a token without the grant", nobody, http.StatusForbidden}, {"a forged token", "not-a-token", http.StatusUnauthorized}} {
			if code, _ := get(base+"/metrics", c.token); code != c.want {
				t.Errorf("pod %s: /metrics with %s: %d, want %d", p.Name, c.who, code, c.want)
			}
		}
		if code, _ := get(base+"/healthz", ""); code != http.StatusOK {
			t.Errorf("pod %s: /healthz without a token: %d, want 200 (open for the kubelet)", p.Name, code)
		}
	}
	t.Logf("metrics auth checked on %d pods", len(pods))
}
