package cluster

import (
	"fmt"
	"sync"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/rotor-dev/rotor/controller/tenancy"
)

// tenantClients hands out, once per namespace, a client of one target
// that acts as that namespace's launcher ServiceAccount (impersonation):
// what it creates, the target's RBAC lets it create in that namespace
// only, and the target's audit log names the tenant. Only the core group
// is built (pods, Secret copies): a whole clientset per tenant would cost
// far more for nothing. The clients share the target's transport.
type tenantClients struct {
	cfg *rest.Config
	mu  sync.Mutex
	ns  map[string]corev1client.CoreV1Interface
}

func newTenantClients(cfg *rest.Config) *tenantClients {
	return &tenantClients{cfg: cfg, ns: map[string]corev1client.CoreV1Interface{}}
}

// LauncherUser is the user name Rotor impersonates for namespace ns.
func LauncherUser(ns string) string {
	return "system:serviceaccount:" + ns + ":" + tenancy.LauncherServiceAccount
}

func (t *tenantClients) For(ns string) (corev1client.CoreV1Interface, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.ns[ns]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(t.cfg)
	// Groups left empty: the apiserver gives an impersonated
	// ServiceAccount its own groups.
	cfg.Impersonate = rest.ImpersonationConfig{UserName: LauncherUser(ns)}
	c, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client acting as %s: %w", LauncherUser(ns), err)
	}
	t.ns[ns] = c
	return c, nil
}
