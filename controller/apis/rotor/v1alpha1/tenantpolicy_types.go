package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=rotor
// +kubebuilder:printcolumn:name="Pod Security",type=string,JSONPath=`.spec.podSecurity`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// TenantPolicy says which pod settings the tasks of some tenant namespaces
// may use in target clusters. It is cluster-scoped: the platform team
// writes it, tenants (who own only their namespaces) cannot. A namespace
// matches at most one policy by its namespaceSelector; one matching none
// gets the policy named "default" if it exists, else Rotor's built-in
// policy, which allows nothing beyond the defaults (docs/security.md).
type TenantPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TenantPolicySpec `json:"spec"`
}

// Pod Security Admission levels (pod-security.kubernetes.io/enforce).
const (
	PodSecurityRestricted = "restricted"
	PodSecurityBaseline   = "baseline"
	PodSecurityPrivileged = "privileged"
)

// TenantPolicySpec is what a tenant's task pods may ask for. Every list
// is an allow-list; empty allows nothing beyond the defaults.
type TenantPolicySpec struct {
	// NamespaceSelector picks the control cluster's namespaces (tenants)
	// this policy governs, by their labels. Unset on the policy named
	// "default" only: it governs every namespace no other policy selects.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// PodSecurity is the Pod Security Admission level Rotor labels the
	// tenant's namespaces in targets with (enforced by the target's
	// apiserver), and the level task pods are built for: under
	// restricted, Rotor fills in the securityContext settings the level
	// requires that the task left unset.
	// +kubebuilder:validation:Enum=restricted;baseline;privileged
	// +optional
	PodSecurity string `json:"podSecurity,omitempty"`
	// ServiceAccounts are the target ServiceAccounts (in the tenant's
	// namespace) task pods may name in pod.serviceAccountName, besides
	// the tenant's own, rotor-task, which pods use by default.
	// +optional
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	// PriorityClasses task pods may name in pod.priorityClassName.
	// +optional
	PriorityClasses []string `json:"priorityClasses,omitempty"`
	// Tolerations task pods may carry. A task's toleration is allowed
	// when one of these has its key and operator, and the same value and
	// effect where these set them.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// NodeSelectors are the node label keys task pods may select on, each
	// with the values allowed; ["*"] (or []) allows any value. (A key
	// written with no value at all is dropped by the apiserver.)
	// +optional
	NodeSelectors map[string][]string `json:"nodeSelectors,omitempty"`
	// HostNamespaces allows hostNetwork, hostPID and hostIPC.
	// +optional
	HostNamespaces bool `json:"hostNamespaces,omitempty"`
	// Privileged allows privileged containers, privilege escalation and
	// added capabilities.
	// +optional
	Privileged bool `json:"privileged,omitempty"`
	// MaxResources caps each container's requests and limits. A container
	// that sets no limit for a capped resource gets the cap as its limit.
	// +optional
	MaxResources corev1.ResourceList `json:"maxResources,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// TenantPolicyList is a list of TenantPolicies.
type TenantPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantPolicy `json:"items"`
}
