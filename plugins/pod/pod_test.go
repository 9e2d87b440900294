package pod

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/plugins"
)

func TestName(t *testing.T) {
	short := plugins.TaskID{Workflow: "diamond", WorkflowUID: "u1", Node: "a", Attempt: 2}
	if got := Name(short); got != "diamond-a-2" {
		t.Fatalf("Name = %q, want diamond-a-2", got)
	}
	long := plugins.TaskID{Workflow: strings.Repeat("w", 60), WorkflowUID: "u1", Node: "node", Attempt: 1}
	n1, n2 := Name(long), Name(long)
	other := long
	other.Attempt = 2
	if len(n1) > 63 || n1 != n2 || n1 == Name(other) {
		t.Fatalf("long names: %q (len %d), again %q, attempt 2 %q: want ≤63, stable, distinct per attempt", n1, len(n1), n2, Name(other))
	}
}

func TestBuildRendersInputs(t *testing.T) {
	tc := &plugins.TaskContext{
		ID: plugins.TaskID{Namespace: "team-a", Workflow: "wf", WorkflowUID: "uid", Node: "a"},
		Task: &v1alpha1.TaskTemplate{Container: &v1alpha1.ContainerSpec{
			Image: "busybox", Command: []string{"sh", "-c", "echo {{inputs.x}} {{ inputs.name }}"},
		}, Metadata: &v1alpha1.TaskMetadata{Annotations: map[string]string{"sim.rotor.dev/duration": "1s"}}},
		Inputs: map[string]json.RawMessage{"x": json.RawMessage(`9`), "name": json.RawMessage(`"bob"`)},
	}
	p, err := New(Config{}).Build(tc, "wf-a-0")
	if err != nil {
		t.Fatal(err)
	}
	c := p.Spec.Containers[0]
	if c.Command[2] != "echo 9 bob" {
		t.Errorf("command = %q", c.Command[2])
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["ROTOR_INPUT_X"] != "9" || env["ROTOR_INPUT_NAME"] != "bob" || env["ROTOR_OUTPUT_FILE"] != OutputFile {
		t.Errorf("env = %v", env)
	}
	if p.Labels[LabelWorkflowUID] != "uid" || p.Annotations[AnnotWorkflow] != "wf" || p.Annotations["sim.rotor.dev/duration"] != "1s" {
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever || c.TerminationMessagePath != OutputFile {
		t.Errorf("restart policy %s, termination path %s", p.Spec.RestartPolicy, c.TerminationMessagePath)
	}
}

func TestPhaseOf(t *testing.T) {
	term := func(code int32, msg string) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{Name: ContainerName, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: msg}}}}
	}
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		want   plugins.Phase
		msg    string
	}{
		{"pending", corev1.PodStatus{Phase: corev1.PodPending}, plugins.PhaseQueued, "pod pending"},
		{"running", corev1.PodStatus{Phase: corev1.PodRunning}, plugins.PhaseRunning, "running"},
		{"succeeded", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: term(0, `{"y": 1}`)}, plugins.PhaseSucceeded, ""},
		{"failed", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: term(3, "boom")}, plugins.PhaseFailed, "container exited with code 3: boom"},
		{"evicted is system", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "low memory"}, plugins.PhaseSystemFailed, "low memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := phaseOf(&corev1.Pod{Status: tc.status}, time.Now())
			if got.Phase != tc.want || !strings.Contains(got.Message, tc.msg) {
				t.Fatalf("phaseOf = %s %q, want %s containing %q", got.Phase, got.Message, tc.want, tc.msg)
			}
			if tc.want == plugins.PhaseSucceeded && string(got.Outputs) != `{"y": 1}` {
				t.Fatalf("outputs = %s", got.Outputs)
			}
		})
	}
}

func TestBuildPodOptionsAndInterruptible(t *testing.T) {
	cfg := Config{
		InterruptibleNodeSelector: map[string]string{"capacity": "spot"},
		InterruptibleTolerations:  []corev1.Toleration{{Key: "spot", Operator: corev1.TolerationOpExists}},
	}
	task := &v1alpha1.TaskTemplate{
		Retries: 2, Interruptible: true,
		Container: &v1alpha1.ContainerSpec{Image: "x", Command: []string{"true"}},
		Pod: &v1alpha1.PodOptions{NodeSelector: map[string]string{"gpu": "a100"}, ServiceAccountName: "runner",
			Tolerations: []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}},
	}
	for _, tc := range []struct {
		attempt       int32
		interruptible bool
	}{{0, true}, {1, true}, {2, false}, {5, false}} {
		p, err := New(cfg).Build(&plugins.TaskContext{ID: plugins.TaskID{Attempt: tc.attempt}, Task: task}, "p")
		if err != nil {
			t.Fatal(err)
		}
		spot := p.Spec.NodeSelector["capacity"] == "spot"
		if spot != tc.interruptible || (p.Labels[LabelInterruptible] == "true") != tc.interruptible || len(p.Spec.Tolerations) != map[bool]int{true: 2, false: 1}[tc.interruptible] {
			t.Errorf("attempt %d: node selector %v, tolerations %v, labels %v; want interruptible=%v", tc.attempt, p.Spec.NodeSelector, p.Spec.Tolerations, p.Labels, tc.interruptible)
		}
		if p.Spec.NodeSelector["gpu"] != "a100" || p.Spec.ServiceAccountName != "runner" {
			t.Errorf("attempt %d: task pod options lost: %v %s", tc.attempt, p.Spec.NodeSelector, p.Spec.ServiceAccountName)
		}
	}
	if task.Pod.NodeSelector["capacity"] != "" {
		t.Fatal("Build changed the task's own node selector")
	}
}

func TestContainersThatNeverStart(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	waiting := func(reason string) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: ContainerName, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "nope"}}}}}}
		p.CreationTimestamp.Time = created
		return p
	}
	for _, tc := range []struct {
		reason string
		after  time.Duration
		want   plugins.Phase
	}{
		{"ImagePullBackOff", time.Minute, plugins.PhaseQueued},
		{"ImagePullBackOff", StartGrace + time.Second, plugins.PhaseSystemFailed},
		{"CreateContainerConfigError", StartGrace + time.Second, plugins.PhaseSystemFailed},
		{"InvalidImageName", 0, plugins.PhaseFailed},
		{"ContainerCreating", time.Hour, plugins.PhaseQueued},
	} {
		if got := phaseOf(waiting(tc.reason), created.Add(tc.after)); got.Phase != tc.want {
			t.Errorf("%s after %s: %s (%s), want %s", tc.reason, tc.after, got.Phase, got.Message, tc.want)
		}
	}
}
