package tenancy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func policy(name string, sel map[string]string, spec v1alpha1.TenantPolicySpec) *v1alpha1.TenantPolicy {
	tp := &v1alpha1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if sel != nil {
		tp.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: sel}
	}
	return tp
}

func TestSelect(t *testing.T) {
	gpu := policy("gpu", map[string]string{"tier": "gpu"}, v1alpha1.TenantPolicySpec{PodSecurity: "baseline"})
	def := policy(DefaultPolicyName, nil, v1alpha1.TenantPolicySpec{PriorityClasses: []string{"low"}})
	stray := policy("no-selector", nil, v1alpha1.TenantPolicySpec{Privileged: true})
	for _, tc := range []struct {
		name     string
		policies []*v1alpha1.TenantPolicy
		labels   map[string]string
		want     string // policy name, "" builtin
		err      string
	}{
		{"selected", []*v1alpha1.TenantPolicy{def, gpu, stray}, map[string]string{"tier": "gpu"}, "gpu", ""},
		{"falls back to default", []*v1alpha1.TenantPolicy{def, gpu, stray}, map[string]string{"tier": "cpu"}, DefaultPolicyName, ""},
		// A policy without a selector governs nothing, or a typo'd
		// selector would hand every namespace its grants.
		{"builtin without default", []*v1alpha1.TenantPolicy{gpu, stray}, nil, "", ""},
		{"two match", []*v1alpha1.TenantPolicy{gpu, policy("also-gpu", map[string]string{"tier": "gpu"}, v1alpha1.TenantPolicySpec{})},
			map[string]string{"tier": "gpu"}, "", "namespace team-a is selected by TenantPolicies also-gpu, gpu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Select(tc.policies, "team-a", tc.labels)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || p.Name != tc.want {
				t.Fatalf("Select = %q, %v; want %q", p.Name, err, tc.want)
			}
		})
	}
	if got := Builtin.Level(); got != v1alpha1.PodSecurityRestricted {
		t.Fatalf("builtin level %q", got)
	}
}

func TestCheckTask(t *testing.T) {
	open := Policy{Name: "open", Spec: v1alpha1.TenantPolicySpec{
		ServiceAccounts: []string{"trainer"}, PriorityClasses: []string{"batch"},
		Tolerations:    []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, {Key: "pool", Value: "ml"}},
		NodeSelectors:  map[string][]string{"accelerator": {"a100", "h100"}, "zone": {"*"}, "pool": {}},
		HostNamespaces: true, Privileged: true,
		MaxResources: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
	}}
	asks := func(mut func(*v1alpha1.TaskTemplate)) *v1alpha1.TaskTemplate {
		t := &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{Image: "busybox"}, Pod: &v1alpha1.PodOptions{}}
		mut(t)
		return t
	}
	for _, tc := range []struct {
		name string
		task *v1alpha1.TaskTemplate
		// want is the field each violation names, under Builtin; open
		// allows every one except those in openToo.
		want    []string
		openToo []string
	}{
		{"nothing asked", asks(func(*v1alpha1.TaskTemplate) {}), nil, nil},
		{"own service account", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.ServiceAccountName = TaskServiceAccount }), nil, nil},
		{"foreign service account", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.ServiceAccountName = "trainer" }),
			[]string{"t.pod.serviceAccountName"}, nil},
		{"the launcher, never", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.ServiceAccountName = LauncherServiceAccount }),
			[]string{"t.pod.serviceAccountName"}, []string{"t.pod.serviceAccountName"}},
		{"priority class", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.PriorityClassName = "batch" }), []string{"t.pod.priorityClassName"}, nil},
		{"other priority class", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.PriorityClassName = "system-node-critical" }),
			[]string{"t.pod.priorityClassName"}, []string{"t.pod.priorityClassName"}},
		{"tolerations", asks(func(t *v1alpha1.TaskTemplate) {
			t.Pod.Tolerations = []corev1.Toleration{
				{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}, // allowed
				{Key: "pool", Value: "ml", Effect: corev1.TaintEffectNoExecute},                         // allowed: the rule sets no effect
				{Key: "pool", Value: "prod"},          // value differs
				{Operator: corev1.TolerationOpExists}, // tolerate everything
			}
		}), []string{"t.pod.tolerations[0]", "t.pod.tolerations[1]", "t.pod.tolerations[2]", "t.pod.tolerations[3]"},
			[]string{"t.pod.tolerations[2]", "t.pod.tolerations[3]"}},
		{"node selectors", asks(func(t *v1alpha1.TaskTemplate) {
			t.Pod.NodeSelector = map[string]string{"accelerator": "a100", "zone": "any", "pool": "ml", "node-role": "master", "x": "y"}
		}), []string{"t.pod.nodeSelector[accelerator]", "t.pod.nodeSelector[node-role]", "t.pod.nodeSelector[pool]", "t.pod.nodeSelector[x]", "t.pod.nodeSelector[zone]"},
			[]string{"t.pod.nodeSelector[node-role]", "t.pod.nodeSelector[x]"}},
		{"wrong accelerator", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.NodeSelector = map[string]string{"accelerator": "t4"} }),
			[]string{"t.pod.nodeSelector[accelerator]"}, []string{"t.pod.nodeSelector[accelerator]"}},
		{"host namespaces", asks(func(t *v1alpha1.TaskTemplate) { t.Pod.HostNetwork, t.Pod.HostPID, t.Pod.HostIPC = true, true, true }),
			[]string{"t.pod.hostNetwork", "t.pod.hostPID", "t.pod.hostIPC"}, nil},
		{"privileged", asks(func(t *v1alpha1.TaskTemplate) {
			unmasked := corev1.UnmaskedProcMount
			t.Container.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}, ProcMount: &unmasked}
		}), []string{"t.container.securityContext.privileged", "t.container.securityContext.allowPrivilegeEscalation",
			"t.container.securityContext.capabilities.add", "t.container.securityContext.procMount"}, nil},
		{"unprivileged security context", asks(func(t *v1alpha1.TaskTemplate) {
			t.Container.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(false), RunAsUser: ptr.To[int64](1000),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
		}), nil, nil},
		{"resources", asks(func(t *v1alpha1.TaskTemplate) {
			t.Container.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4500m"), corev1.ResourceMemory: resource.MustParse("64Gi")},
			}
		}), nil, []string{"t.container.resources.limits[cpu]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []struct {
				policy Policy
				want   []string
			}{{Builtin, tc.want}, {open, tc.openToo}} {
				errs := p.policy.CheckTask(field.NewPath("t"), tc.task)
				var got []string
				for _, e := range errs {
					got = append(got, e.Field)
					if !strings.Contains(e.Error(), p.policy.String()) {
						t.Errorf("%s: %q does not name the policy", p.policy.Name, e.Error())
					}
				}
				if strings.Join(got, " ") != strings.Join(p.want, " ") {
					t.Errorf("%s: violations %v, want %v (%v)", p.policy, got, p.want, errs)
				}
			}
		})
	}
}

func TestCheckSpecReachesInlineSubWorkflows(t *testing.T) {
	spec := &v1alpha1.WorkflowSpec{
		Tasks: map[string]v1alpha1.TaskTemplate{"ok": {Container: &v1alpha1.ContainerSpec{Image: "busybox"}}},
		Nodes: []v1alpha1.Node{{Name: "sub", Workflow: &v1alpha1.SubWorkflow{Spec: rawJSON(t,
			`{"tasks":{"root":{"container":{"image":"busybox","securityContext":{"privileged":true}}}},"nodes":[{"name":"b","branch":{"cases":[{"if":"true","workflow":{"spec":{"tasks":{"sa":{"container":{"image":"x"},"pod":{"serviceAccountName":"admin"}}}}}}]}}]}`)}}},
	}
	var got []string
	for _, e := range Builtin.CheckSpec(field.NewPath("spec"), spec) {
		got = append(got, e.Field)
	}
	want := "spec.nodes[0].workflow.spec.tasks[root].container.securityContext.privileged spec.nodes[0].workflow.spec.nodes[0].branch.cases[0].workflow.spec.tasks[sa].pod.serviceAccountName"
	if strings.Join(got, " ") != want {
		t.Fatalf("violations %v\nwant %s", got, want)
	}
}

func TestApply(t *testing.T) {
	pod := func() *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "task",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}}}}}
	}
	capped := Policy{Spec: v1alpha1.TenantPolicySpec{MaxResources: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}}}
	p := pod()
	capped.Apply(p)
	c := p.Spec.Containers[0]
	if p.Spec.ServiceAccountName != TaskServiceAccount {
		t.Errorf("service account %q, want %s", p.Spec.ServiceAccountName, TaskServiceAccount)
	}
	if cpu, mem := c.Resources.Limits[corev1.ResourceCPU], c.Resources.Limits[corev1.ResourceMemory]; cpu.String() != "2" || mem.String() != "1Gi" {
		t.Errorf("limits cpu %s memory %s, want the ceiling 2 where unset and the task's own 1Gi", cpu.String(), mem.String())
	}
	sc, ps := c.SecurityContext, p.Spec.SecurityContext
	if sc == nil || ps == nil || !ptr.Deref(ps.RunAsNonRoot, false) || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		ptr.Deref(sc.AllowPrivilegeEscalation, true) || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Fatalf("restricted defaults missing: pod %+v container %+v", ps, sc)
	}

	// The task's own settings stand; the target's Pod Security decides.
	p = pod()
	p.Spec.ServiceAccountName = "trainer"
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr.To(false), AllowPrivilegeEscalation: ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
	Builtin.Apply(p)
	sc, ps = p.Spec.Containers[0].SecurityContext, p.Spec.SecurityContext
	if p.Spec.ServiceAccountName != "trainer" || ptr.Deref(sc.RunAsNonRoot, true) || !ptr.Deref(sc.AllowPrivilegeEscalation, false) ||
		ps.RunAsNonRoot != nil || ps.SeccompProfile != nil {
		t.Fatalf("Apply overrode the task's own settings: pod %+v container %+v", ps, sc)
	}

	p = pod()
	Policy{Spec: v1alpha1.TenantPolicySpec{PodSecurity: v1alpha1.PodSecurityBaseline}}.Apply(p)
	if p.Spec.SecurityContext != nil || p.Spec.Containers[0].SecurityContext != nil {
		t.Fatalf("baseline got restricted defaults: %+v", p.Spec)
	}
}

func rawJSON(t *testing.T, s string) *apiextensionsv1.JSON {
	t.Helper()
	return &apiextensionsv1.JSON{Raw: []byte(s)}
}
