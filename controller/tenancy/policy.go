// Package tenancy decides what a tenant's task pods may be in a target
// cluster: which TenantPolicy governs a namespace (Select), whether a
// task's pod settings are allowed (Policy.CheckTask), and the settings
// Rotor fills in (Policy.Apply). It is pure: the admission webhook judges
// a Workflow with it at apply time, and the pod plugin judges each attempt
// again before any pod exists, for workflows that got in while the
// webhook was down and for tasks of WorkflowTemplates and dynamic
// fragments, which the webhook does not see.
package tenancy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// Names of what Rotor manages in each tenant namespace of a target.
const (
	// DefaultPolicyName is the TenantPolicy that governs every namespace
	// no other policy selects.
	DefaultPolicyName = "default"
	// TaskServiceAccount is the tenant's identity its task pods run as,
	// unless the task names another its policy allows.
	TaskServiceAccount = "rotor-task"
	// LauncherServiceAccount is the identity Rotor impersonates to create
	// the tenant's pods and Secret copies: its RoleBinding reaches only
	// the tenant's namespace. No pod may run as it.
	LauncherServiceAccount = "rotor-launcher"
	// LauncherClusterRole is what the launcher is bound to in its
	// namespace; charts/rotor-target installs it.
	LauncherClusterRole = "rotor-tenant-launcher"
	// ReasonPolicyDenied is the reason of a node whose task asks for pod
	// settings its tenant's policy does not allow.
	ReasonPolicyDenied = "PolicyDenied"
)

// Policy is the policy governing one namespace.
type Policy struct {
	// Name is the TenantPolicy's, "" for the built-in policy.
	Name string
	Spec v1alpha1.TenantPolicySpec
}

// Builtin is the policy of a namespace no TenantPolicy governs: the
// restricted Pod Security level, the tenant's own ServiceAccount, and
// nothing else a pod could ask for.
var Builtin = Policy{Spec: v1alpha1.TenantPolicySpec{PodSecurity: v1alpha1.PodSecurityRestricted}}

// Level is the policy's Pod Security Admission level.
func (p Policy) Level() string {
	if p.Spec.PodSecurity == "" {
		return v1alpha1.PodSecurityRestricted
	}
	return p.Spec.PodSecurity
}

// String names the policy for messages.
func (p Policy) String() string {
	if p.Name == "" {
		return "the built-in tenant policy (no TenantPolicy selects this namespace and none is named \"default\")"
	}
	return fmt.Sprintf("TenantPolicy %q", p.Name)
}

// Select returns the policy governing namespace ns, whose labels are
// nsLabels: the one policy whose selector matches, else the one named
// "default", else Builtin. Two matching policies are an error: which one
// wins must not depend on list order, so the platform team must fix it.
func Select(policies []*v1alpha1.TenantPolicy, ns string, nsLabels map[string]string) (Policy, error) {
	var matched []string
	var found, fallback *v1alpha1.TenantPolicy
	for _, tp := range policies {
		if tp.Spec.NamespaceSelector == nil {
			if tp.Name == DefaultPolicyName {
				fallback = tp
			}
			continue // a selector-less policy selects nothing
		}
		sel, err := metav1.LabelSelectorAsSelector(tp.Spec.NamespaceSelector)
		if err != nil {
			return Policy{}, fmt.Errorf("TenantPolicy %q has an invalid namespaceSelector: %v; ask the platform team to fix it", tp.Name, err)
		}
		if sel.Matches(labels.Set(nsLabels)) {
			matched = append(matched, tp.Name)
			found = tp
		}
	}
	switch {
	case len(matched) > 1:
		sort.Strings(matched)
		return Policy{}, fmt.Errorf("namespace %s is selected by TenantPolicies %s; a namespace may be selected by one at most: ask the platform team to fix their namespaceSelectors",
			ns, strings.Join(matched, ", "))
	case found != nil:
		return Policy{Name: found.Name, Spec: found.Spec}, nil
	case fallback != nil:
		return Policy{Name: fallback.Name, Spec: fallback.Spec}, nil
	}
	return Builtin, nil
}

// CheckTask returns what of task t's pod settings p does not allow, each
// error under path (the task's path in its workflow) and naming p. Only
// what the tenant asks for is judged: the install's own settings
// (interruptible tolerations) are not the tenant's.
func (p Policy) CheckTask(path *field.Path, t *v1alpha1.TaskTemplate) field.ErrorList {
	var errs field.ErrorList
	deny := func(f *field.Path, v any, what string) {
		errs = append(errs, field.Forbidden(f, fmt.Sprintf("%v: %s (%s)", v, what, p)))
	}
	s := &p.Spec
	if o := t.Pod; o != nil {
		pp := path.Child("pod")
		switch sa := o.ServiceAccountName; {
		case sa == LauncherServiceAccount:
			deny(pp.Child("serviceAccountName"), sa, "is Rotor's own identity in the target; no task may run as it")
		case sa != "" && sa != TaskServiceAccount && !slices.Contains(s.ServiceAccounts, sa):
			deny(pp.Child("serviceAccountName"), sa, "the tenant may not run pods as this ServiceAccount; allowed: "+allowed(TaskServiceAccount, s.ServiceAccounts))
		}
		if pc := o.PriorityClassName; pc != "" && !slices.Contains(s.PriorityClasses, pc) {
			deny(pp.Child("priorityClassName"), pc, "the tenant may not use this priority class; allowed: "+allowed("", s.PriorityClasses))
		}
		for i, tol := range o.Tolerations {
			if !tolerationAllowed(tol, s.Tolerations) {
				deny(pp.Child("tolerations").Index(i), tolerationString(tol), "the tenant may not tolerate this taint")
			}
		}
		keys := make([]string, 0, len(o.NodeSelector))
		for k := range o.NodeSelector {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			vals, ok := s.NodeSelectors[k]
			if !ok || (len(vals) > 0 && !slices.Contains(vals, "*") && !slices.Contains(vals, o.NodeSelector[k])) {
				deny(pp.Child("nodeSelector").Key(k), k+"="+o.NodeSelector[k], "the tenant may not select nodes by this label and value")
			}
		}
		if !s.HostNamespaces {
			for _, h := range []struct {
				name string
				on   bool
			}{{"hostNetwork", o.HostNetwork}, {"hostPID", o.HostPID}, {"hostIPC", o.HostIPC}} {
				if h.on {
					deny(pp.Child(h.name), true, "the tenant may not use the node's namespaces (hostNamespaces)")
				}
			}
		}
	}
	if c := t.Container; c != nil {
		cp := path.Child("container")
		if sc := c.SecurityContext; sc != nil && !s.Privileged {
			sp := cp.Child("securityContext")
			if ptr.Deref(sc.Privileged, false) {
				deny(sp.Child("privileged"), true, "the tenant may not run privileged containers (privileged)")
			}
			if ptr.Deref(sc.AllowPrivilegeEscalation, false) {
				deny(sp.Child("allowPrivilegeEscalation"), true, "the tenant may not allow privilege escalation (privileged)")
			}
			if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
				deny(sp.Child("capabilities", "add"), sc.Capabilities.Add, "the tenant may not add capabilities (privileged)")
			}
			if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
				deny(sp.Child("procMount"), *sc.ProcMount, "the tenant may not unmask /proc (privileged)")
			}
		}
		errs = append(errs, p.checkResources(cp.Child("resources"), c.Resources)...)
	}
	return errs
}

func (p Policy) checkResources(path *field.Path, r corev1.ResourceRequirements) field.ErrorList {
	var errs field.ErrorList
	names := make([]string, 0, len(p.Spec.MaxResources))
	for n := range p.Spec.MaxResources {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		limit := p.Spec.MaxResources[corev1.ResourceName(n)]
		for _, side := range []struct {
			name string
			list corev1.ResourceList
		}{{"requests", r.Requests}, {"limits", r.Limits}} {
			if q, ok := side.list[corev1.ResourceName(n)]; ok && q.Cmp(limit) > 0 {
				errs = append(errs, field.Forbidden(path.Child(side.name).Key(n),
					fmt.Sprintf("%s is over the tenant's ceiling of %s (%s maxResources)", q.String(), limit.String(), p)))
			}
		}
	}
	return errs
}

func allowed(always string, list []string) string {
	all := list
	if always != "" {
		all = append([]string{always}, list...)
	}
	if len(all) == 0 {
		return "none"
	}
	return strings.Join(all, ", ")
}

func tolerationAllowed(t corev1.Toleration, allowed []corev1.Toleration) bool {
	op := func(o corev1.TolerationOperator) corev1.TolerationOperator {
		if o == "" {
			return corev1.TolerationOpEqual
		}
		return o
	}
	for _, a := range allowed {
		if a.Key == t.Key && op(a.Operator) == op(t.Operator) &&
			(a.Value == "" || a.Value == t.Value) && (a.Effect == "" || a.Effect == t.Effect) {
			return true
		}
	}
	return false
}

func tolerationString(t corev1.Toleration) string {
	s := t.Key
	if t.Key == "" {
		s = "*"
	}
	if t.Value != "" {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + string(t.Effect)
	}
	return s
}

// Apply fills in what p gives a tenant's pod that its task left unset:
// the tenant's ServiceAccount; under the restricted level, the
// securityContext settings the level requires (runAsNonRoot, the
// RuntimeDefault seccomp profile, no privilege escalation, every
// capability dropped), so a task need not repeat them; and the ceiling
// as the limit of each capped resource the container does not limit.
// The target's apiserver enforces the level on what comes out.
func (p Policy) Apply(pod *corev1.Pod) {
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = TaskServiceAccount
	}
	restricted := p.Level() == v1alpha1.PodSecurityRestricted
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		for n, q := range p.Spec.MaxResources {
			if _, ok := c.Resources.Limits[n]; !ok {
				if c.Resources.Limits == nil {
					c.Resources.Limits = corev1.ResourceList{}
				}
				c.Resources.Limits[n] = q.DeepCopy()
			}
		}
		if !restricted {
			continue
		}
		if c.SecurityContext == nil {
			c.SecurityContext = &corev1.SecurityContext{}
		}
		sc := c.SecurityContext
		if sc.AllowPrivilegeEscalation == nil {
			sc.AllowPrivilegeEscalation = ptr.To(false)
		}
		if sc.Capabilities == nil {
			sc.Capabilities = &corev1.Capabilities{}
		}
		if len(sc.Capabilities.Drop) == 0 {
			sc.Capabilities.Drop = []corev1.Capability{"ALL"}
		}
	}
	if !restricted {
		return
	}
	if pod.Spec.SecurityContext == nil {
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	ps := pod.Spec.SecurityContext
	if ps.RunAsNonRoot == nil && !allContainers(pod, func(sc *corev1.SecurityContext) bool { return sc.RunAsNonRoot != nil }) {
		ps.RunAsNonRoot = ptr.To(true)
	}
	if ps.SeccompProfile == nil && !allContainers(pod, func(sc *corev1.SecurityContext) bool { return sc.SeccompProfile != nil }) {
		ps.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
}

// allContainers says whether every container's securityContext has f:
// then the pod-level default would be overridden everywhere.
func allContainers(pod *corev1.Pod, f func(*corev1.SecurityContext) bool) bool {
	for _, c := range pod.Spec.Containers {
		if c.SecurityContext == nil || !f(c.SecurityContext) {
			return false
		}
	}
	return true
}

// LauncherRules are the rules of the LauncherClusterRole, bound in each
// tenant namespace to its launcher: the pod plugin's creates and deletes
// of task pods and of the Secret copies their env references. The
// rotor-target chart writes the same rules; the sandbox installs these.
func LauncherRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update", "delete"}},
	}
}
