package tenancy

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	rotorlisters "github.com/rotor-dev/rotor/controller/generated/listers/rotor/v1alpha1"
)

// Source finds the policy of a control-cluster namespace from informer
// caches of Namespaces and TenantPolicies.
type Source struct {
	Namespaces corelisters.NamespaceLister
	Policies   rotorlisters.TenantPolicyLister
}

// For returns the policy governing namespace ns.
func (s Source) For(ns string) (Policy, error) {
	var nsLabels map[string]string
	switch n, err := s.Namespaces.Get(ns); {
	case err == nil:
		nsLabels = n.Labels
	case !apierrors.IsNotFound(err):
		return Policy{}, fmt.Errorf("namespace %s: %w", ns, err)
	}
	// A namespace not in the cache yet has no labels, so no selector
	// matches it: it gets the default, never a policy it was not given.
	all, err := s.Policies.List(labels.Everything())
	if err != nil {
		return Policy{}, fmt.Errorf("list TenantPolicies: %w", err)
	}
	return Select(all, ns, nsLabels)
}
