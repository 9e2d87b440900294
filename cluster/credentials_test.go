package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: t, context: {cluster: t, user: u}}]
current-context: t
`

// TestRESTConfigCredentialSources: a Cluster gets its client from exactly
// one of its kubeconfig Secret or the pod's own credentials, with the
// Cluster's rate limits either way, and says what to fix otherwise.
func TestRESTConfigCredentialSources(t *testing.T) {
	control := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "east", Namespace: "rotor-system", ResourceVersion: "7"},
		Data:       map[string][]byte{"kubeconfig": []byte(testKubeconfig)},
	})
	ref := &v1alpha1.SecretKeyRef{Name: "east"}
	inPod := func() (*rest.Config, error) {
		return &rest.Config{Host: "https://10.96.0.1:443", BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token"}, nil
	}
	notInPod := func() (*rest.Config, error) { return nil, rest.ErrNotInCluster }
	for _, tc := range []struct {
		name      string
		spec      v1alpha1.ClusterSpec
		inCluster func() (*rest.Config, error)
		wantHost  string
		wantRV    string
		wantQPS   float32
		wantErr   string
	}{
		{name: "secret", spec: v1alpha1.ClusterSpec{KubeconfigSecretRef: ref}, inCluster: notInPod, wantHost: "https://127.0.0.1:6443", wantRV: "7", wantQPS: defaultQPS},
		{name: "in cluster", spec: v1alpha1.ClusterSpec{InCluster: true, Client: v1alpha1.ClusterClient{QPS: 50}}, inCluster: inPod, wantHost: "https://10.96.0.1:443", wantQPS: 50},
		{name: "in cluster outside a pod", spec: v1alpha1.ClusterSpec{InCluster: true}, inCluster: notInPod, wantErr: "run it in a pod of this cluster or use kubeconfigSecretRef"},
		{name: "both", spec: v1alpha1.ClusterSpec{InCluster: true, KubeconfigSecretRef: ref}, inCluster: inPod, wantErr: "both set: keep one"},
		{name: "neither", inCluster: inPod, wantErr: "neither spec.kubeconfigSecretRef nor spec.inCluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := InClusterConfig
			InClusterConfig = tc.inCluster
			defer func() { InClusterConfig = old }()
			c := &v1alpha1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "east"}, Spec: tc.spec}
			cfg, rv, err := RESTConfig(context.Background(), control, "rotor-system", c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if tc.name == "in cluster outside a pod" && !errors.Is(err, rest.ErrNotInCluster) {
					t.Fatalf("error %v does not wrap rest.ErrNotInCluster", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost || rv != tc.wantRV || cfg.QPS != tc.wantQPS {
				t.Fatalf("host %q rv %q qps %v, want %q %q %v", cfg.Host, rv, cfg.QPS, tc.wantHost, tc.wantRV, tc.wantQPS)
			}
		})
	}
}
