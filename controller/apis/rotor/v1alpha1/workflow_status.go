package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkflowPhase is the phase of a whole workflow.
type WorkflowPhase string

// Workflow phases. Succeeded, Failed and Aborted are terminal.
const (
	WorkflowPending   WorkflowPhase = "Pending"
	WorkflowRunning   WorkflowPhase = "Running"
	WorkflowSucceeded WorkflowPhase = "Succeeded"
	WorkflowFailed    WorkflowPhase = "Failed"
	WorkflowAborted   WorkflowPhase = "Aborted"
)

// IsTerminal reports whether nothing more will happen to a workflow in p.
func (p WorkflowPhase) IsTerminal() bool {
	return p == WorkflowSucceeded || p == WorkflowFailed || p == WorkflowAborted
}

// NodePhase is the phase of one node.
type NodePhase string

// Node phases. Succeeded, Failed, Skipped and Aborted are terminal.
const (
	NodeNotStarted NodePhase = ""
	NodeQueued     NodePhase = "Queued"
	NodeRunning    NodePhase = "Running"
	NodeRetrying   NodePhase = "Retrying"
	NodeSucceeded  NodePhase = "Succeeded"
	NodeFailed     NodePhase = "Failed"
	NodeSkipped    NodePhase = "Skipped"
	NodeAborted    NodePhase = "Aborted"
)

// IsTerminal reports whether a node in p will not change again.
func (p NodePhase) IsTerminal() bool {
	return p == NodeSucceeded || p == NodeFailed || p == NodeSkipped || p == NodeAborted
}

// Reasons recorded on workflows and nodes.
const (
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonNodeFailed       = "NodeFailed"
	ReasonSucceeded        = "Succeeded"
	ReasonExitCode         = "ExitCode"
	ReasonBadOutputs       = "BadOutputs"
	ReasonTimedOut         = "TimedOut"
	ReasonPodLost          = "PodLost"
	ReasonNoCluster        = "NoCluster"
	ReasonClusterLost      = "ClusterLost"
	ReasonClusterDrained   = "ClusterDrained"
	ReasonUpstreamFailed   = "UpstreamFailed"
	ReasonWorkflowFailed   = "WorkflowFailed"
	ReasonRetriesExhausted = "RetriesExhausted"
	ReasonDeadline         = "DeadlineExceeded"
	ReasonAborted          = "Aborted"
	ReasonNoCaseMatched    = "NoCaseMatched"
	ReasonRejected         = "Rejected"
	ReasonRecovered        = "Recovered"
	// ReasonClusterUnreachable: a target the finalizer must delete pods
	// in does not answer.
	ReasonClusterUnreachable = "ClusterUnreachable"
)

// WorkflowStatus is written only by the propeller replica that owns the
// workflow's namespace, one compare-and-swap update per reconcile round.
type WorkflowStatus struct {
	// +optional
	Phase WorkflowPhase `json:"phase,omitempty"`
	// Reason is a CamelCase word for machines; Message is for people.
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// Nodes holds each node's status, keyed by node name.
	// +optional
	Nodes map[string]NodeStatus `json:"nodes,omitempty"`
	// Outputs are the resolved workflow outputs, set on success.
	// +optional
	Outputs map[string]apiextensionsv1.JSON `json:"outputs,omitempty"`
	// CompactedNodes holds, gzipped and base64-encoded, the statuses of
	// the succeeded nodes of a large workflow (see docs/design.md, "Large
	// workflows"). Read nodes with AllNodes, which merges them in.
	// +optional
	CompactedNodes string `json:"compactedNodes,omitempty"`
	// Recovered counts the nodes taken over from spec.recoverFrom.
	// +optional
	Recovered *int32 `json:"recovered,omitempty"`
	// TemplateSpec is the spec of spec.workflowTemplateRef, snapshotted at
	// the first round.
	// +kubebuilder:validation:XPreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	TemplateSpec *apiextensionsv1.JSON `json:"templateSpec,omitempty"`
	// ShardEpoch is the partition epoch of the replica that wrote this
	// status. A replica that reads a higher epoch than its own must stop
	// writing (fencing); 0 means an unsharded writer.
	// +optional
	ShardEpoch int64 `json:"shardEpoch,omitempty"`
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Orphans are attempts abandoned on a cluster that was lost: their
	// pods may still exist there and are deleted when it answers again.
	// +optional
	Orphans []Orphan `json:"orphans,omitempty"`
	// Conditions: CleanupBlocked while the deletion finalizer waits for
	// an unreachable target cluster to delete the workflow's pods there.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of a Workflow.
const (
	// WorkflowCleanupBlocked: the workflow is deleted and its finalizer
	// waits for target clusters that do not answer (the message names
	// them, since when, and when their pods are given up).
	WorkflowCleanupBlocked = "CleanupBlocked"
)

// NodeStatus is the state of one node.
type NodeStatus struct {
	// +optional
	Phase NodePhase `json:"phase,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// RetryAt is when the next attempt may start (retry backoff).
	// +optional
	RetryAt *metav1.Time `json:"retryAt,omitempty"`
	// Attempts lists every attempt, oldest first.
	// +optional
	Attempts []Attempt `json:"attempts,omitempty"`
	// Outputs are the node's typed outputs once it succeeded.
	// +optional
	Outputs map[string]apiextensionsv1.JSON `json:"outputs,omitempty"`
	// Type is the plugin of a task node, recorded so cleanup can find its
	// resources without the spec.
	// +optional
	Type string `json:"type,omitempty"`
	// Spec is the DAG a sub-workflow or dynamic node runs, snapshotted when
	// it starts so a template edited later does not change a running
	// workflow.
	// +kubebuilder:validation:XPreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Spec *apiextensionsv1.JSON `json:"spec,omitempty"`
	// Case is the branch case taken: its index, or "else".
	// +optional
	Case string `json:"case,omitempty"`
	// Compact replaces attempts, type and times of a succeeded task node
	// in a large workflow (see docs/design.md, "Large workflows"), as
	// "CLUSTER:ATTEMPTS:STARTUNIX:MILLIS".
	// +optional
	Compact string `json:"compact,omitempty"`
}

// Orphan is an attempt left behind on a lost cluster.
type Orphan struct {
	Cluster string `json:"cluster"`
	// Node is the node's path (sub.a, m.3).
	Node    string `json:"node"`
	Attempt int32  `json:"attempt"`
	// Type is the plugin that ran it, which knows how to stop it.
	Type string `json:"type"`
}

// Attempt is one try at running a node's task.
type Attempt struct {
	// Number counts from 0; it is part of the pod's name.
	Number int32 `json:"number"`
	// Cluster is the target cluster the attempt was placed on.
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Pod is the attempt's pod name in the target cluster.
	// +optional
	Pod string `json:"pod,omitempty"`
	// +optional
	Phase NodePhase `json:"phase,omitempty"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	ExitCode *int32 `json:"exitCode,omitempty"`
	// System marks a failure that was not the task's fault (pod evicted or
	// deleted, node or cluster lost): it does not spend the task's retries.
	// +optional
	System bool `json:"system,omitempty"`
	// State is the plugin's own small state for this attempt (for example
	// the status URL the http plugin polls).
	// +optional
	State string `json:"state,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// WorkflowList is a list of Workflows.
type WorkflowList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workflow `json:"items"`
}
