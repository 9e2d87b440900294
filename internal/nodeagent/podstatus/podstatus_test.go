package podstatus

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func running(name string, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func exited(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func waiting(name, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func backingOff(name string, lastCode int32) corev1.ContainerStatus {
	s := waiting(name, "CrashLoopBackOff")
	s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: lastCode}
	return s
}

func TestPhase(t *testing.T) {
	spec := func(policy corev1.RestartPolicy, init bool) *corev1.PodSpec {
		s := &corev1.PodSpec{RestartPolicy: policy, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}
		if init {
			s.InitContainers = []corev1.Container{{Name: "i"}}
		}
		return s
	}
	type cs = []corev1.ContainerStatus
	for _, tc := range []struct {
		name       string
		spec       *corev1.PodSpec
		init, apps cs
		want       corev1.PodPhase
	}{
		{"pulling", spec(corev1.RestartPolicyAlways, false), nil, cs{waiting("a", "ErrImagePull"), waiting("b", "ContainerCreating")}, corev1.PodPending},
		{"one waiting one running", spec(corev1.RestartPolicyAlways, false), nil, cs{waiting("a", "ImagePullBackOff"), running("b", true)}, corev1.PodPending},
		{"all running", spec(corev1.RestartPolicyAlways, false), nil, cs{running("a", false), running("b", true)}, corev1.PodRunning},
		{"crash loop counts as started", spec(corev1.RestartPolicyAlways, false), nil, cs{backingOff("a", 1), running("b", true)}, corev1.PodRunning},
		{"always: all exited is restarting", spec(corev1.RestartPolicyAlways, false), nil, cs{exited("a", 0), exited("b", 1)}, corev1.PodRunning},
		{"never: all succeeded", spec(corev1.RestartPolicyNever, false), nil, cs{exited("a", 0), exited("b", 0)}, corev1.PodSucceeded},
		{"never: one failed", spec(corev1.RestartPolicyNever, false), nil, cs{exited("a", 0), exited("b", 2)}, corev1.PodFailed},
		{"on failure: failed one restarting", spec(corev1.RestartPolicyOnFailure, false), nil, cs{exited("a", 0), backingOff("b", 2)}, corev1.PodRunning},
		{"on failure: all succeeded", spec(corev1.RestartPolicyOnFailure, false), nil, cs{exited("a", 0), exited("b", 0)}, corev1.PodSucceeded},
		{"init running", spec(corev1.RestartPolicyAlways, true), cs{running("i", false)}, nil, corev1.PodPending},
		{"init failed under never", spec(corev1.RestartPolicyNever, true), cs{exited("i", 1)}, nil, corev1.PodFailed},
		{"init failed under always retries", spec(corev1.RestartPolicyAlways, true), cs{backingOff("i", 1)}, nil, corev1.PodPending},
		{"init done", spec(corev1.RestartPolicyAlways, true), cs{exited("i", 0)}, cs{running("a", true), running("b", true)}, corev1.PodRunning},
		{"unknown container", spec(corev1.RestartPolicyAlways, false), nil, cs{running("a", true)}, corev1.PodPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Phase(tc.spec, tc.init, tc.apps); got != tc.want {
				t.Fatalf("Phase = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestConditions(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	t1 := metav1.NewTime(time.Unix(2000, 0))
	spec := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}},
		ReadinessGates: nil}
	first := Status(Input{Spec: spec, Containers: []corev1.ContainerStatus{running("a", true), running("b", false)}, Now: t0})
	ready := cond(t, first, corev1.PodReady)
	if ready.Status != corev1.ConditionFalse || ready.Reason != "ContainersNotReady" || ready.Message != "containers with unready status: [b]" {
		t.Fatalf("Ready with an unready container = %+v", ready)
	}
	again := Status(Input{Spec: spec, Base: first, Containers: []corev1.ContainerStatus{running("a", true), running("b", false)}, Now: t1})
	if got := cond(t, again, corev1.PodReady).LastTransitionTime; !got.Equal(&t0) {
		t.Fatalf("unchanged Ready moved its transition time to %s", got)
	}
	allReady := Status(Input{Spec: spec, Base: first, Containers: []corev1.ContainerStatus{running("a", true), running("b", true)}, Now: t1})
	if c := cond(t, allReady, corev1.PodReady); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&t1) {
		t.Fatalf("Ready after all containers are ready = %+v", c)
	}
	if c := cond(t, allReady, corev1.ContainersReady); c.Status != corev1.ConditionTrue {
		t.Fatalf("ContainersReady = %+v", c)
	}
	t.Run("readiness gate", func(t *testing.T) {
		gated := spec.DeepCopy()
		gated.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
		s := Status(Input{Spec: gated, Containers: []corev1.ContainerStatus{running("a", true), running("b", true)}, Now: t0})
		if c := cond(t, s, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
			t.Fatalf("Ready with an unmet gate = %+v", c)
		}
	})
	t.Run("completed", func(t *testing.T) {
		never := spec.DeepCopy()
		never.RestartPolicy = corev1.RestartPolicyNever
		s := Status(Input{Spec: never, Containers: []corev1.ContainerStatus{exited("a", 0), exited("b", 0)}, Now: t0})
		if c := cond(t, s, corev1.PodReady); s.Phase != corev1.PodSucceeded || c.Reason != "PodCompleted" {
			t.Fatalf("finished pod: phase %s Ready %+v", s.Phase, c)
		}
	})
}

func cond(t *testing.T, s corev1.PodStatus, typ corev1.PodConditionType) corev1.PodCondition {
	t.Helper()
	c, ok := findCondition(s.Conditions, typ)
	if !ok {
		t.Fatalf("no %s condition in %+v", typ, s.Conditions)
	}
	return c
}
