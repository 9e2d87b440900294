package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=rotor
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reachable",type=string,JSONPath=`.status.conditions[?(@.type=="Reachable")].status`
// +kubebuilder:printcolumn:name="Group",type=integer,JSONPath=`.spec.failoverGroup`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.podsInFlight`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Cluster is a target cluster that task pods can be placed on. Its labels
// (metadata.labels) are what task cluster selectors match.
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSpec   `json:"spec"`
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterSpec says how to reach a target cluster and how much work it takes.
type ClusterSpec struct {
	// KubeconfigSecretRef names a Secret in Rotor's namespace whose key
	// (default "kubeconfig") holds a kubeconfig for the cluster.
	// +optional
	KubeconfigSecretRef *SecretKeyRef `json:"kubeconfigSecretRef,omitempty"`
	// InCluster uses the credentials of the pod Rotor runs in.
	// +optional
	InCluster bool `json:"inCluster,omitempty"`
	// Weight biases placement among equally eligible clusters.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=1
	// +optional
	Weight int32 `json:"weight,omitempty"`
	// +optional
	Capacity ClusterCapacity `json:"capacity,omitempty"`
	// Taints keep new placements away (cordon) or also move pending work
	// (drain).
	// +optional
	Taints []corev1.Taint `json:"taints,omitempty"`
	// FailoverGroup orders clusters for disaster recovery: the lowest group
	// with room gets the work.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FailoverGroup int32 `json:"failoverGroup,omitempty"`
	// UnreachableGracePeriod is how long the cluster may stay unreachable
	// before its work fails over to other clusters (default 30s).
	// +optional
	UnreachableGracePeriod *metav1.Duration `json:"unreachableGracePeriod,omitempty"`
	// Client tunes Rotor's client for this cluster.
	// +optional
	Client ClusterClient `json:"client,omitempty"`
	// Runtime describes how the cluster runs pods; "process" and "kwok" are
	// the development runtimes of rotor dev.
	// +optional
	Runtime string `json:"runtime,omitempty"`
}

// SecretKeyRef points at one key of a Secret.
type SecretKeyRef struct {
	Name string `json:"name"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	Key string `json:"key,omitempty"`
}

// ClusterClient bounds the requests each Rotor process sends the cluster.
type ClusterClient struct {
	// QPS is the sustained request rate (default 300).
	// +kubebuilder:validation:Minimum=0
	// +optional
	QPS int32 `json:"qps,omitempty"`
	// Burst is the request burst (default 2 × QPS).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// ClusterCapacity bounds the work placed on a cluster.
type ClusterCapacity struct {
	// MaxTaskPods caps task pods in flight on the cluster (0: no cap).
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTaskPods int32 `json:"maxTaskPods,omitempty"`
}

// Condition types of a Cluster.
const (
	// ClusterReachable: the last probes of /readyz got an answer.
	ClusterReachable = "Reachable"
	// ClusterReady: the cluster answers and says it is ready; only Ready
	// clusters get new work.
	ClusterReady = "Ready"
	// ClusterCredentials: Rotor could build a client from the kubeconfig
	// Secret (False says what is wrong with it).
	ClusterCredentials = "CredentialsValid"
)

// ClusterStatus is written by the cluster prober (the leading manager).
type ClusterStatus struct {
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastProbeTime is when the prober last asked the cluster's /readyz.
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`
	// LastProbeLatencyMillis is how long that probe took.
	// +optional
	LastProbeLatencyMillis int64 `json:"lastProbeLatencyMillis,omitempty"`
	// PodsInFlight counts the cluster's task pods not yet finished, as the
	// prober saw them.
	// +optional
	PodsInFlight int32 `json:"podsInFlight,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// ClusterList is a list of Clusters.
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Cluster `json:"items"`
}
