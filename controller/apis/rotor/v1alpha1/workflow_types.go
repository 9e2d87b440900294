package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ValueType names the type of a workflow or task input or output.
// +kubebuilder:validation:Enum=string;integer;float;boolean;object;array;blob;file;directory
type ValueType string

// The value types. A blob is a URI string that points at data a task wrote
// elsewhere; object and array are JSON values. A file and a directory are
// data Rotor moves through its object store: the value is a reference
// ({uri, size, sha256}, package data/ref), the task reads
// /rotor/inputs/<name> and writes /rotor/outputs/<name>.
const (
	TypeString    ValueType = "string"
	TypeInteger   ValueType = "integer"
	TypeFloat     ValueType = "float"
	TypeBoolean   ValueType = "boolean"
	TypeObject    ValueType = "object"
	TypeArray     ValueType = "array"
	TypeBlob      ValueType = "blob"
	TypeFile      ValueType = "file"
	TypeDirectory ValueType = "directory"
)

// IsData reports whether t is moved by the data agent (file, directory).
func (t ValueType) IsData() bool { return t == TypeFile || t == TypeDirectory }

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wf;wfs,categories=rotor
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Workflow is one execution of a DAG of tasks. Its spec is immutable in
// practice: the engine reads it once per round and never writes it.
type Workflow struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WorkflowSpec   `json:"spec"`
	Status WorkflowStatus `json:"status,omitempty"`
}

// WorkflowSpec is what a user submits: typed inputs, task templates, the
// nodes that run them, and the workflow's output bindings.
type WorkflowSpec struct {
	// Inputs are the workflow's typed inputs with their values.
	// +optional
	Inputs map[string]WorkflowInput `json:"inputs,omitempty"`
	// Tasks are the templates nodes refer to by name.
	// +optional
	Tasks map[string]TaskTemplate `json:"tasks,omitempty"`
	// Nodes form the DAG. Dependencies follow from the bindings in each
	// node's inputs ({{nodes.NAME.outputs.KEY}}) and from dependsOn.
	// +optional
	// +listType=map
	// +listMapKey=name
	Nodes []Node `json:"nodes,omitempty"`
	// ClusterSelector restricts every task of the workflow to target
	// clusters whose labels hold every one of these pairs. In a nested spec
	// (inline sub-workflow, WorkflowTemplate, dynamic fragment) it restricts
	// the nested tasks, together with every enclosing clusterSelector.
	// +optional
	ClusterSelector map[string]string `json:"clusterSelector,omitempty"`
	// Outputs bind the workflow's outputs to node outputs or inputs.
	// +optional
	Outputs map[string]apiextensionsv1.JSON `json:"outputs,omitempty"`
	// Parallelism caps how many nodes of this workflow run at once
	// (0 or unset: no cap).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`
	// ActiveDeadline bounds the whole workflow's run time; when it passes,
	// running nodes (onFailure too) are stopped and the workflow fails with
	// DeadlineExceeded. In a nested spec it bounds the node that runs it,
	// from that node's start.
	// +optional
	ActiveDeadline *metav1.Duration `json:"activeDeadline,omitempty"`
	// Abort, once set, stops every running node and ends the workflow
	// Aborted (rotor abort sets it). Only a Workflow's own spec has it.
	// +optional
	Abort bool `json:"abort,omitempty"`
	// Approvals answer approve gates by node path: "approve" or "reject"
	// (rotor approve and rotor reject set them). Only a Workflow's own
	// spec has them.
	// +optional
	Approvals map[string]string `json:"approvals,omitempty"`
	// OnFailure runs when the workflow fails; in a nested spec, when the
	// nested DAG fails (as NODE/NAME, before the node fails). It may read
	// {{failure.node}} (the failed node's path) and {{failure.message}}.
	// +optional
	OnFailure *Node `json:"onFailure,omitempty"`
	// RecoverFrom names an earlier execution of the same spec in this
	// namespace: every node that succeeded there keeps its outputs and is
	// not run again (rotor relaunch --recover sets it). Only a Workflow's
	// own spec has it.
	// +optional
	RecoverFrom string `json:"recoverFrom,omitempty"`
	// WorkflowTemplateRef runs a registered WorkflowTemplate; inputs here
	// give its input values, activeDeadline and clusterSelector apply with
	// the template's own, and tasks, nodes, outputs, parallelism and
	// onFailure must be empty. Only a Workflow's own spec has it.
	// +optional
	WorkflowTemplateRef string `json:"workflowTemplateRef,omitempty"`
	// TTL deletes the workflow this long after it ends, separately for
	// success and for failure (Failed or Aborted). Unset, the namespace's
	// annotations rotor.dev/ttl-after-success and
	// rotor.dev/ttl-after-failure apply; with neither, it is kept. The
	// deletion goes through the finalizer, which removes its pods first.
	// +optional
	TTL *WorkflowTTL `json:"ttl,omitempty"`
}

// WorkflowTTL is how long a finished workflow is kept.
type WorkflowTTL struct {
	// AfterSuccess applies once it Succeeded.
	// +optional
	AfterSuccess *metav1.Duration `json:"afterSuccess,omitempty"`
	// AfterFailure applies once it Failed or was Aborted.
	// +optional
	AfterFailure *metav1.Duration `json:"afterFailure,omitempty"`
}

// WorkflowInput is a typed workflow input and its value.
type WorkflowInput struct {
	Type ValueType `json:"type"`
	// Value must match Type.
	// +kubebuilder:validation:XPreserveUnknownFields
	// +optional
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
	// +optional
	Description string `json:"description,omitempty"`
}

// TaskTemplate is a reusable unit of work with a typed interface.
type TaskTemplate struct {
	// Type selects the plugin that runs the task. Defaults to "pod" when a
	// container is given.
	// +optional
	Type string `json:"type,omitempty"`
	// Inputs declare the task's input names and types.
	// +optional
	Inputs map[string]ValueType `json:"inputs,omitempty"`
	// Outputs declare the task's output names and types. A task writes them
	// as one JSON object to the file named by $ROTOR_OUTPUT_FILE.
	// +optional
	Outputs map[string]ValueType `json:"outputs,omitempty"`
	// OutputFiles lets the task write its string, object and array
	// outputs as files, $ROTOR_OUTPUTS_DIR/<name> each holding the value's
	// JSON, of any size: the pod gets the data agent, which offloads a
	// value over 4 KiB to the object store. A task with file or directory
	// outputs may write its values so anyway; either way a value left out
	// of the files comes from the outputs JSON.
	// +optional
	OutputFiles bool `json:"outputFiles,omitempty"`
	// Container is the container the pod plugin runs.
	// +optional
	Container *ContainerSpec `json:"container,omitempty"`
	// Metadata adds labels and annotations to the task's pods.
	// +optional
	Metadata *TaskMetadata `json:"metadata,omitempty"`
	// Retries is how many times a failed attempt is retried for failures
	// that are the task's own (non-zero exit, bad outputs, timeout).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Retries int32 `json:"retries,omitempty"`
	// Timeout bounds each attempt, for example "60s" or "5m".
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Backoff spaces retries: the n-th retry waits initial*factor^(n-1),
	// at most max. Unset: retries start at once.
	// +optional
	Backoff *Backoff `json:"backoff,omitempty"`
	// Pod customizes the pods of a pod task.
	// +optional
	Pod *PodOptions `json:"pod,omitempty"`
	// Interruptible lets attempts run on preemptible capacity (the
	// propeller's --interruptible-* settings), except the last attempt the
	// task's retries allow, which runs on regular capacity.
	// +optional
	Interruptible bool `json:"interruptible,omitempty"`
	// HTTP is the request the http plugin makes (type: http).
	// +optional
	HTTP *HTTPTask `json:"http,omitempty"`
	// ClusterSelector restricts the task's attempts to target clusters
	// whose labels hold every one of these pairs (together with the
	// workflow's clusterSelector).
	// +optional
	ClusterSelector map[string]string `json:"clusterSelector,omitempty"`
	// Cache reuses the outputs of an earlier successful run of this task
	// with the same version and inputs, in the same namespace.
	// +optional
	Cache *TaskCache `json:"cache,omitempty"`
}

// TaskCache says how a task's outputs are cached.
type TaskCache struct {
	// Version is part of the cache key: bump it when the task's code
	// changes so old outputs are not reused.
	// +kubebuilder:validation:MinLength=1
	Version string `json:"version"`
	// Serialize lets only one execution of a key run at a time; the others
	// wait for its result.
	// +optional
	Serialize bool `json:"serialize,omitempty"`
}

// PodOptions are pod-level settings of a pod task.
type PodOptions struct {
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// ServiceAccountName is the service account the pod runs as in the
	// target cluster's namespace.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// HostNetwork, HostPID and HostIPC put the pod in the node's
	// namespaces; they need a TenantPolicy with hostNamespaces.
	// +optional
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// +optional
	HostPID bool `json:"hostPID,omitempty"`
	// +optional
	HostIPC bool `json:"hostIPC,omitempty"`
}

// HTTPTask calls an HTTP endpoint. The JSON object it answers with is the
// task's outputs; an answer with a statusURL is polled until done.
type HTTPTask struct {
	// URL may use {{inputs.NAME}}.
	URL string `json:"url"`
	// +kubebuilder:validation:Enum=GET;POST;PUT
	// +optional
	Method string `json:"method,omitempty"`
	// Headers may use {{inputs.NAME}}.
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
	// SecretHeaders are headers whose values come from Secrets of the
	// workflow's namespace, read at each request and never written into
	// the workflow's status, events or logs.
	// +optional
	// +listType=map
	// +listMapKey=name
	SecretHeaders []SecretHeader `json:"secretHeaders,omitempty"`
	// Body may use {{inputs.NAME}}; default for POST and PUT: the task's
	// inputs as a JSON object.
	// +optional
	Body string `json:"body,omitempty"`
	// PollInterval spaces status polls of an asynchronous call (default 2s).
	// +optional
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`
}

// SecretHeader is an HTTP header whose value is a Secret's key, after an
// optional prefix ("Bearer ").
type SecretHeader struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// SecretKeyRef names a Secret of the workflow's namespace and its key.
	SecretKeyRef corev1.SecretKeySelector `json:"secretKeyRef"`
}

// Backoff is an exponential retry delay.
type Backoff struct {
	// +optional
	Initial *metav1.Duration `json:"initial,omitempty"`
	// +optional
	Max *metav1.Duration `json:"max,omitempty"`
	// Factor multiplies the delay per retry (default 2).
	// +kubebuilder:validation:Minimum=1
	// +optional
	Factor *int32 `json:"factor,omitempty"`
}

// ContainerSpec is the container of a pod task. Command and args may use
// {{inputs.NAME}} templates.
type ContainerSpec struct {
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
	// +optional
	Command []string `json:"command,omitempty"`
	// +optional
	Args []string `json:"args,omitempty"`
	// +optional
	WorkingDir string `json:"workingDir,omitempty"`
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// SecurityContext is the container's. Under a restricted tenant
	// policy, Rotor fills in what the level requires and this leaves
	// unset (runAsNonRoot, no privilege escalation, no capabilities,
	// the RuntimeDefault seccomp profile); privileged settings need a
	// TenantPolicy that allows them.
	// +optional
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
}

// TaskMetadata is copied onto every pod of the task.
type TaskMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Node is one vertex of the DAG. Exactly one of task, branch, map,
// workflow and gate says what it does.
type Node struct {
	// Name is unique in its DAG; it names the node's pods.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=40
	Name string `json:"name"`
	// Task names the template in spec.tasks this node runs.
	// +optional
	Task string `json:"task,omitempty"`
	// Inputs bind each input (of the task, or of the sub-workflow) to a
	// literal JSON value or a template: "{{workflow.inputs.NAME}}" or
	// "{{nodes.NODE.outputs.KEY}}".
	// +optional
	Inputs map[string]apiextensionsv1.JSON `json:"inputs,omitempty"`
	// DependsOn adds ordering edges beyond those the bindings imply.
	// +optional
	DependsOn []string `json:"dependsOn,omitempty"`
	// Timeout bounds the whole node from its start: every attempt and
	// retry wait of a task, every item of a map, a branch's chosen target,
	// the nodes of a sub-workflow or dynamic fragment, a gate's wait. When
	// it passes, what still runs is stopped and the node fails TimedOut.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Branch runs the first case whose condition holds.
	// +optional
	Branch *BranchNode `json:"branch,omitempty"`
	// Map runs a task once per element of a list.
	// +optional
	Map *MapNode `json:"map,omitempty"`
	// Workflow runs a nested DAG, inline or from a WorkflowTemplate.
	// +optional
	Workflow *SubWorkflow `json:"workflow,omitempty"`
	// Gate waits: for a duration, or for approval.
	// +optional
	Gate *Gate `json:"gate,omitempty"`
	// Dynamic marks a task node whose output "fragment" (an object with
	// nodes and outputs) is run as a sub-workflow once the task succeeds.
	// +optional
	Dynamic bool `json:"dynamic,omitempty"`
}

// BranchNode chooses one target by ordered conditions. Only the chosen
// target runs; the others are Skipped. Its outputs are the chosen target's.
type BranchNode struct {
	// +kubebuilder:validation:MinItems=1
	Cases []BranchCase `json:"cases"`
	// Else runs when no case holds; without it that is a failure naming
	// the values the conditions saw.
	// +optional
	Else *BranchTarget `json:"else,omitempty"`
}

// BranchCase is one condition and what runs when it holds.
type BranchCase struct {
	// If is a condition, e.g. "{{nodes.a.outputs.y}} > 10 && {{workflow.inputs.fast}}".
	If           string `json:"if"`
	BranchTarget `json:",inline"`
}

// BranchTarget is a task or a sub-workflow with its input bindings.
type BranchTarget struct {
	// +optional
	Task string `json:"task,omitempty"`
	// +optional
	Workflow *SubWorkflow `json:"workflow,omitempty"`
	// +optional
	Inputs map[string]apiextensionsv1.JSON `json:"inputs,omitempty"`
}

// MapNode runs Task once per element of the list Over yields, passing the
// element as input Item. Its outputs are lists, one element per item in
// input order (null for items that failed).
type MapNode struct {
	Task string `json:"task"`
	// Over is a binding that yields an array.
	// +kubebuilder:validation:XPreserveUnknownFields
	Over apiextensionsv1.JSON `json:"over"`
	// Item names the task input that receives each element (default "item").
	// +optional
	Item string `json:"item,omitempty"`
	// Inputs bind the task's other inputs, the same for every item.
	// +optional
	Inputs map[string]apiextensionsv1.JSON `json:"inputs,omitempty"`
	// Concurrency caps items running at once (0: no cap).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Concurrency int32 `json:"concurrency,omitempty"`
	// MinSuccessPercent is the share of items that must succeed for the
	// map to succeed (default 100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MinSuccessPercent *int32 `json:"minSuccessPercent,omitempty"`
}

// SubWorkflow is a nested DAG: a WorkflowTemplate in the workflow's
// namespace, or an inline spec. Its inputs are bound by the node's inputs.
type SubWorkflow struct {
	// TemplateRef names a WorkflowTemplate in the same namespace.
	// +optional
	TemplateRef string `json:"templateRef,omitempty"`
	// Spec is an inline WorkflowSpec. Tasks not defined in it are looked
	// up in the enclosing workflow's tasks.
	// +kubebuilder:validation:XPreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Spec *apiextensionsv1.JSON `json:"spec,omitempty"`
}

// Gate waits before its dependents may run.
type Gate struct {
	// Sleep waits this long.
	// +optional
	Sleep *metav1.Duration `json:"sleep,omitempty"`
	// Approve waits for `rotor approve WORKFLOW NODE` (or reject). Use the
	// node's timeout to bound the wait.
	// +optional
	Approve *Approval `json:"approve,omitempty"`
}

// Approval is a manual gate.
type Approval struct {
	// Message tells the approver what they approve.
	// +optional
	Message string `json:"message,omitempty"`
}
