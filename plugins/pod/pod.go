// Package pod is the plugin for container tasks: each attempt is one pod,
// named deterministically from workflow, node and attempt, in the target
// cluster's namespace of the same name as the workflow's.
package pod

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/template"
	"github.com/rotor-dev/rotor/controller/tenancy"
	"github.com/rotor-dev/rotor/controller/values"
	"github.com/rotor-dev/rotor/data/ref"
	"github.com/rotor-dev/rotor/internal/tracing"
	"github.com/rotor-dev/rotor/plugins"
)

// Labels and annotations on task pods. The UID label maps a pod back to
// its workflow even across a delete and re-create of the same name.
const (
	LabelManaged     = "rotor.dev/managed"
	LabelWorkflowUID = "rotor.dev/workflow-uid"
	LabelNode        = "rotor.dev/node"
	LabelAttempt     = "rotor.dev/attempt"
	AnnotWorkflow    = "rotor.dev/workflow"
	// ContainerName is the task container's name.
	ContainerName = "task"
	// OutputFile is where a real container writes its outputs: the
	// kubelet's termination-message path, read back from the pod status.
	OutputFile = "/dev/termination-log"
)

// Config holds cluster-wide settings of the pod plugin.
type Config struct {
	// InterruptibleNodeSelector and InterruptibleTolerations are added to
	// the pods of interruptible attempts, to land them on preemptible
	// capacity.
	InterruptibleNodeSelector map[string]string
	InterruptibleTolerations  []corev1.Toleration
	// Secrets, if set, reads the control cluster's Secrets that task env
	// references, to copy them into the target (copySecrets). Nil: a
	// reference is resolved by the target's kubelet in the target's
	// namespace, where the platform must have created the Secret.
	Secrets plugins.SecretReader
	// Tenants, if set, isolates tenants in targets (tenant.go): each
	// attempt's task is judged by its namespace's TenantPolicy before any
	// pod, the pod gets the policy's defaults, the target namespace its
	// Pod Security level and Rotor-managed ServiceAccounts, and the pod
	// and Secret copies are created as the tenant's launcher identity.
	Tenants Policies
	// Data, if set, is the object store task pods move files and
	// directories through (data.go). Nil: such tasks fail, saying so.
	Data *DataConfig
}

// Plugin runs container tasks as pods.
type Plugin struct {
	cfg     Config
	tenants tenants
	// dataSecrets remembers where the agent's Secret was last seen right
	// (cluster/namespace -> when), so a data pod costs no GET of it.
	dataSecrets seen
}

// New returns the pod plugin.
func New(cfg Config) *Plugin { return &Plugin{cfg: cfg} }

// LabelInterruptible marks pods of attempts that may be preempted.
const LabelInterruptible = "rotor.dev/interruptible"

// Type implements plugins.Plugin.
func (*Plugin) Type() string { return "pod" }

// Name is the attempt's pod name: workflow-node-attempt, with a nested
// node's path written with dots (sub.a, m.3), shortened with a hash when
// longer than a DNS label allows. Node names never hold dots, so paths
// cannot collide.
func Name(id plugins.TaskID) string {
	n := fmt.Sprintf("%s-%s-%d", id.Workflow, NodeLabel(id.Node), id.Attempt)
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(id.WorkflowUID + "/" + n))
	suffix := fmt.Sprintf("-%d-%s", id.Attempt, hex.EncodeToString(sum[:])[:10])
	return strings.TrimRight(n[:63-len(suffix)], "-.") + suffix
}

// Handle creates the attempt's pod if it does not exist, and otherwise
// reports the pod's state.
func (p *Plugin) Handle(ctx context.Context, tc *plugins.TaskContext) (plugins.PhaseInfo, error) {
	name := Name(tc.ID)
	pod, err := tc.Cluster.Pods.Pods(tc.ID.Namespace).Get(name)
	if apierrors.IsNotFound(err) && tc.Launched {
		// The cache may lag a create from the previous round: ask the
		// apiserver before calling the pod lost.
		pod, err = tc.Cluster.Client.CoreV1().Pods(tc.ID.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: "PodDeleted",
				Message: fmt.Sprintf("pod %s was deleted from cluster %s before it finished", name, tc.Cluster.Name)}, nil
		}
	}
	if apierrors.IsNotFound(err) {
		return p.create(ctx, tc, name)
	}
	if err != nil {
		return plugins.PhaseInfo{}, fmt.Errorf("get pod %s/%s in cluster %s: %w", tc.ID.Namespace, name, tc.Cluster.Name, err)
	}
	if pod.Labels[LabelWorkflowUID] != tc.ID.WorkflowUID {
		return plugins.PhaseInfo{}, plugins.Permanent("PodConflict", fmt.Errorf("pod %s/%s in cluster %s belongs to another workflow (uid %s): delete it or rename the workflow",
			tc.ID.Namespace, name, tc.Cluster.Name, pod.Labels[LabelWorkflowUID]))
	}
	info := phaseOf(pod, time.Now())
	if hasDataAgent(pod) {
		info = p.dataPhase(tc, pod, info)
	}
	info.Resource = name
	return info, nil
}

// hasDataAgent reports whether the pod moves data through the agent.
func hasDataAgent(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == DataVolume {
			return true
		}
	}
	return false
}

// dataPhase refines a data pod's phase with its agent's: a failed download
// ends the attempt by its kind, and a finished pod's outputs gain the
// upload sidecar's references.
func (p *Plugin) dataPhase(tc *plugins.TaskContext, pod *corev1.Pod, info plugins.PhaseInfo) plugins.PhaseInfo {
	switch info.Phase {
	case plugins.PhaseFailed, plugins.PhaseSystemFailed:
		if f := agentFailure(initTerminated(pod, DownloadName), ReasonDataDownload, ReasonDataInput); f != nil {
			f.StartedAt = info.StartedAt
			return *f
		}
	case plugins.PhaseSucceeded:
		for _, c := range pod.Spec.InitContainers {
			if c.Name != UploadName {
				continue
			}
			c, err := p.data(context.Background(), tc.ID.Namespace)
			if err != nil {
				return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: ReasonDataUpload, Message: err.Error()}
			}
			if c == nil {
				return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: ReasonDataUpload, Message: "the pod has the data agent but this Rotor has no object store configured (--raw-data-url)"}
			}
			prefix, err := c.attemptPrefix(tc.ID)
			if err != nil {
				return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: ReasonDataOutput, Message: err.Error()}
			}
			return withUploads(info, initTerminated(pod, UploadName), prefix, tc.Task)
		}
	}
	return info
}

func (p *Plugin) create(ctx context.Context, tc *plugins.TaskContext, name string) (_ plugins.PhaseInfo, err error) {
	var pol tenancy.Policy
	if p.cfg.Tenants != nil {
		var denied *plugins.PhaseInfo
		if pol, denied = p.policyFor(tc); denied != nil {
			return *denied, nil
		}
	}
	// The namespace's data location first: one that cannot be opened now
	// (its Secret missing or unreadable) holds the pod back, saying why,
	// until the platform fixes it; it is not the task's fault.
	var data *DataConfig
	if ins, outs, _ := dataIO(tc, ""); len(ins)+len(outs) > 0 {
		if data, err = p.data(ctx, tc.ID.Namespace); err != nil {
			return plugins.PhaseInfo{Phase: plugins.PhaseQueued, Reason: ReasonWaitingForStore, CheckAfter: storeWait,
				Message: "waiting for the namespace's raw-data location: " + err.Error()}, nil
		}
	}
	pod, err := p.Build(tc, name)
	if err != nil {
		return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "BadTask", Message: err.Error()}, nil
	}
	ctx, span := tracing.Start(ctx, "kube.create", attribute.String("kind", "Pod"), attribute.String("cluster", tc.Cluster.Name))
	defer func() { tracing.End(span, err) }()
	setup := func() error { return ensureNamespace(ctx, tc) }
	if p.cfg.Tenants != nil {
		pol.Apply(pod)
		setup = func() error { return p.ensureTenant(ctx, tc, pol) }
		if err := setup(); err != nil {
			return plugins.PhaseInfo{}, err
		}
	}
	api, err := p.launcher(tc)
	if err != nil {
		return plugins.PhaseInfo{}, err
	}
	if info, err := p.copySecrets(ctx, tc, api, pod); info != nil || err != nil {
		if info != nil {
			return *info, nil
		}
		return plugins.PhaseInfo{}, err
	}
	if hasDataAgent(pod) {
		// A store that does not answer would fail the agent: the node
		// waits for it, saying so, with no pod and no retry spent.
		if h := data.Health; h != nil {
			if err := h.Err(ctx); err != nil {
				return plugins.PhaseInfo{Phase: plugins.PhaseQueued, Reason: ReasonWaitingForStore, CheckAfter: storeWait,
					Message: "waiting for the object store before creating the pod: " + err.Error()}, nil
			}
		}
		if err := p.ensureDataSecret(ctx, tc, api, data); err != nil {
			return plugins.PhaseInfo{}, err
		}
	}
	pods := api.Pods(tc.ID.Namespace)
	// Asked again here, after the calls above: a replica that lost its
	// partition while in them must not create a pod the new owner, who
	// listed this target already, would never see coming.
	if err := tc.Fenced(); err != nil {
		return plugins.PhaseInfo{}, err
	}
	_, err = pods.Create(ctx, pod, metav1.CreateOptions{})
	// Missing: the namespace (or, with tenant isolation, the launcher's
	// binding) was deleted behind Rotor's back; set it up again once.
	if apierrors.IsNotFound(err) || (p.cfg.Tenants != nil && rbacRefused(err)) {
		p.tenants.forget(tc.Cluster.Name + "/" + tc.ID.Namespace)
		if err = setup(); err == nil {
			if err = tc.Fenced(); err == nil {
				_, err = pods.Create(ctx, pod, metav1.CreateOptions{})
			}
		}
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		err = fmt.Errorf("create pod %s/%s in cluster %s: %w", tc.ID.Namespace, name, tc.Cluster.Name, err)
		if refusedForGood(err) {
			return plugins.PhaseInfo{}, plugins.Permanent("PodRejected", err)
		}
		return plugins.PhaseInfo{}, err
	}
	return plugins.PhaseInfo{Phase: plugins.PhaseQueued, Reason: "PodCreated", Message: "pod " + name + " created on " + tc.Cluster.Name, Resource: name}, nil
}

// rbacRefused reports whether a create or delete was refused by RBAC (the
// launcher not set up there, or its binding gone), not by admission (Pod
// Security, a quota), which setting the tenant up again would not change.
func rbacRefused(err error) bool {
	if !apierrors.IsForbidden(err) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "cannot create resource") || strings.Contains(msg, "cannot delete resource")
}

// refusedForGood reports whether a pod create was refused in a way the
// same pod cannot get past: invalid, or forbidden by admission (Pod
// Security, a policy webhook) or by the target credential's RBAC. A
// ResourceQuota refusal and a namespace being deleted are Forbidden too,
// but pass: quota frees up, and the namespace is created again.
func refusedForGood(err error) bool {
	if apierrors.IsInvalid(err) {
		return true
	}
	if !apierrors.IsForbidden(err) {
		return false
	}
	msg := err.Error()
	return !strings.Contains(msg, "exceeded quota") && !strings.Contains(msg, "is being terminated")
}

func ensureNamespace(ctx context.Context, tc *plugins.TaskContext) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tc.ID.Namespace, Labels: map[string]string{LabelManaged: "true"}}}
	_, err := tc.Cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s in cluster %s: %w", tc.ID.Namespace, tc.Cluster.Name, err)
	}
	return nil
}

// Interruptible reports whether an attempt may run on preemptible
// capacity: the task allows it and this is not the last attempt its
// retries allow.
func Interruptible(tc *plugins.TaskContext) bool {
	return tc.Task.Interruptible && tc.ID.Attempt < tc.Task.Retries
}

// Build renders the attempt's pod.
func (p *Plugin) Build(tc *plugins.TaskContext, name string) (*corev1.Pod, error) {
	c := tc.Task.Container
	if c == nil {
		return nil, fmt.Errorf("task has no container")
	}
	lookup := func(r template.Ref) (json.RawMessage, error) {
		v, ok := tc.Inputs[r.Name]
		if r.Kind != template.TaskInput || !ok {
			return nil, fmt.Errorf("{{%s}} has no value", r)
		}
		if tc.Task.Inputs[r.Name].IsData() {
			// The task sees a file or directory where the agent put it.
			return json.Marshal(DataMountPath + "/inputs/" + r.Name)
		}
		if off, ok := offloadedInput(tc, r.Name); ok {
			return nil, fmt.Errorf("input %s is offloaded (%d bytes, over the %d a value may have inline), so it cannot be put in a command line: read the file named by $ROTOR_INPUT_%s_FILE instead of {{inputs.%s}}",
				r.Name, off.Size, ref.InlineLimit, envName(r.Name), r.Name)
		}
		return v, nil
	}
	render := func(in []string) ([]string, error) {
		out := make([]string, len(in))
		for i, s := range in {
			t, err := template.Parse(s)
			if err != nil {
				return nil, err
			}
			if out[i], err = t.RenderString(lookup); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	cmd, err := render(c.Command)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	args, err := render(c.Args)
	if err != nil {
		return nil, fmt.Errorf("args: %w", err)
	}
	env := append([]corev1.EnvVar{}, c.Env...)
	names := make([]string, 0, len(tc.Inputs))
	for k := range tc.Inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		env = append(env, corev1.EnvVar{Name: "ROTOR_INPUT_" + envName(k), Value: values.Text(tc.Inputs[k])})
	}
	env = append(env, corev1.EnvVar{Name: "ROTOR_OUTPUT_FILE", Value: OutputFile})
	labels := map[string]string{}
	annots := map[string]string{}
	if m := tc.Task.Metadata; m != nil {
		for k, v := range m.Labels {
			labels[k] = v
		}
		for k, v := range m.Annotations {
			annots[k] = v
		}
	}
	labels[LabelManaged] = "true"
	labels[LabelWorkflowUID] = tc.ID.WorkflowUID
	labels[LabelNode] = NodeLabel(tc.ID.Node)
	labels[LabelAttempt] = strconv.Itoa(int(tc.ID.Attempt))
	annots[AnnotWorkflow] = tc.ID.Workflow
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tc.ID.Namespace, Labels: labels, Annotations: annots},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: ContainerName, Image: c.Image, Command: cmd, Args: args, WorkingDir: c.WorkingDir,
				Env: env, Resources: c.Resources,
				TerminationMessagePath:   OutputFile,
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}},
		},
	}
	if o := tc.Task.Pod; o != nil {
		pod.Spec.NodeSelector = copyMap(o.NodeSelector)
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, o.Tolerations...)
		pod.Spec.ServiceAccountName = o.ServiceAccountName
		pod.Spec.PriorityClassName = o.PriorityClassName
		pod.Spec.HostNetwork, pod.Spec.HostPID, pod.Spec.HostIPC = o.HostNetwork, o.HostPID, o.HostIPC
	}
	if c.SecurityContext != nil {
		pod.Spec.Containers[0].SecurityContext = c.SecurityContext.DeepCopy()
	}
	if err := p.addDataAgent(tc, pod); err != nil {
		return nil, err
	}
	if Interruptible(tc) {
		labels[LabelInterruptible] = "true"
		if len(p.cfg.InterruptibleNodeSelector) > 0 && pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = map[string]string{}
		}
		for k, v := range p.cfg.InterruptibleNodeSelector {
			pod.Spec.NodeSelector[k] = v
		}
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, p.cfg.InterruptibleTolerations...)
	}
	return pod, nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// NodeLabel writes a node path as a label value: "/" becomes ".", and
// paths too long for a label keep their end.
func NodeLabel(path string) string {
	v := strings.ReplaceAll(path, "/", ".")
	if len(v) > 63 {
		v = strings.TrimLeft(v[len(v)-63:], ".-")
	}
	return v
}

func envName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}

// Abort deletes the attempt's pod, as the identity that created it.
func (p *Plugin) Abort(ctx context.Context, tc *plugins.TaskContext) error {
	api, err := p.launcher(tc)
	if err != nil {
		return err
	}
	ctx, span := tracing.Start(ctx, "kube.delete", attribute.String("kind", "Pod"), attribute.String("cluster", tc.Cluster.Name))
	defer span.End()
	del := func() error { return api.Pods(tc.ID.Namespace).Delete(ctx, Name(tc.ID), metav1.DeleteOptions{}) }
	err = del()
	// A pod in a namespace Rotor never set up there (a stray copy, a
	// namespace made by hand) or whose launcher binding is gone: set the
	// tenant up, then delete as its launcher.
	if p.cfg.Tenants != nil && rbacRefused(err) {
		p.tenants.forget(tc.Cluster.Name + "/" + tc.ID.Namespace)
		pol, perr := p.cfg.Tenants.For(tc.ID.Namespace)
		if perr != nil {
			return fmt.Errorf("delete pod %s/%s in cluster %s: %w", tc.ID.Namespace, Name(tc.ID), tc.Cluster.Name, perr)
		}
		if err = p.ensureTenant(ctx, tc, pol); err == nil {
			err = del()
		}
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s in cluster %s: %w", tc.ID.Namespace, Name(tc.ID), tc.Cluster.Name, err)
	}
	return nil
}

// Finalize releases nothing: a finished pod is kept for its logs until the
// workflow is deleted.
func (p *Plugin) Finalize(context.Context, *plugins.TaskContext) error { return nil }
