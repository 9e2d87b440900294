package chart

import (
	"context"
	"net"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/e2e/harness"
)

// checkMetricsAuth: with metrics.auth, every manager and propeller pod
// serves /metrics over HTTPS to the callers RBAC allows, and a
// ServiceAccount bound to the chart's rotor-metrics-reader ClusterRole is
// one (harness.CheckMetricsAuth has the cases); /healthz stays open, as
// the kubelet (here the node agent, over HTTPS) probes it without a
// token, and the pods' readiness already proved that.
func checkMetricsAuth(t *testing.T, pods []corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	const ns = "monitoring"
	if err := env.CreateNamespaces(ctx, ns); err != nil {
		t.Fatal(err)
	}
	reader, nobody := env.ServiceAccountToken(t, ns, "prometheus"), env.ServiceAccountToken(t, ns, "nobody")
	if _, err := env.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-prometheus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "rotor-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
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
		harness.CheckMetricsAuth(t, p.Name, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), reader, nobody, "system:serviceaccount:"+ns+":nobody")
	}
	t.Logf("metrics auth checked on %d pods", len(pods))
}
