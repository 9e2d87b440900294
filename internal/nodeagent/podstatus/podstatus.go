// Package podstatus computes a pod's phase and conditions from its
// containers' statuses by the kubelet's rules (without sidecar init
// containers). Pure: the caller passes the time and writes the result.
package podstatus

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Input is what a pod status is computed from.
type Input struct {
	Spec *corev1.PodSpec
	// Base carries the fields this package does not compute (IPs, start
	// time, QoS class) and the previous conditions, whose transition times
	// are kept while their status does not change.
	Base corev1.PodStatus
	// Init and Containers are the containers' statuses in spec order;
	// a container not yet seen may be missing.
	Init, Containers []corev1.ContainerStatus
	Now              metav1.Time
}

// Status returns the pod status for in. Equal inputs give equal outputs,
// so a caller can skip writing a status that did not change.
func Status(in Input) corev1.PodStatus {
	s := *in.Base.DeepCopy()
	s.InitContainerStatuses = slices.Clone(in.Init)
	s.ContainerStatuses = slices.Clone(in.Containers)
	s.Phase = Phase(in.Spec, in.Init, in.Containers)
	s.Conditions = conditions(in, s.Phase)
	return s
}

// Phase is the kubelet's getPhase for pods without sidecars.
func Phase(spec *corev1.PodSpec, init, containers []corev1.ContainerStatus) corev1.PodPhase {
	pendingInit, failedInit := 0, 0
	for _, c := range spec.InitContainers {
		st, ok := find(init, c.Name)
		switch {
		case !ok:
			pendingInit++
		case st.State.Terminated != nil:
			if st.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case st.State.Waiting != nil && st.LastTerminationState.Terminated != nil:
			if st.LastTerminationState.Terminated.ExitCode != 0 {
				failedInit++
			}
		default:
			pendingInit++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	if pendingInit > 0 || failedInit > 0 {
		return corev1.PodPending
	}
	return appPhase(spec, containers)
}

func appPhase(spec *corev1.PodSpec, containers []corev1.ContainerStatus) corev1.PodPhase {
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for _, c := range spec.Containers {
		st, ok := find(containers, c.Name)
		switch {
		case !ok:
			unknown++
		case st.State.Running != nil:
			running++
		case st.State.Terminated != nil:
			stopped++
			if st.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case st.State.Waiting != nil && st.LastTerminationState.Terminated != nil:
			stopped++
		case st.State.Waiting != nil:
			waiting++
		default:
			unknown++
		}
	}
	switch {
	case waiting > 0 || unknown > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case spec.RestartPolicy == corev1.RestartPolicyAlways:
		return corev1.PodRunning // every container is restarting
	case stopped == succeeded:
		return corev1.PodSucceeded
	case spec.RestartPolicy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	}
	return corev1.PodRunning // OnFailure: the failed ones are restarting
}

func conditions(in Input, phase corev1.PodPhase) []corev1.PodCondition {
	prev := in.Base.Conditions
	set := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: in.Now}
		if ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
		}
		if old, found := findCondition(prev, t); found && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		return c
	}
	notInit := incompleteInit(in.Spec, in.Init)
	notReady := unready(in.Spec, in.Containers)
	ready, readyReason, readyMsg := len(notReady) == 0, "ContainersNotReady", "containers with unready status: "+list(notReady)
	if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
		ready, readyReason, readyMsg = false, "PodCompleted", ""
	}
	podReady, podReason, podMsg := ready, readyReason, readyMsg
	if gates := falseGates(in.Spec, prev); ready && len(gates) > 0 {
		podReady, podReason, podMsg = false, "ReadinessGatesNotReady", "corresponding condition of pod readiness gate are not true: "+list(gates)
	}
	out := []corev1.PodCondition{
		set(corev1.PodReadyToStartContainers, true, "", ""),
		set(corev1.PodInitialized, len(notInit) == 0, "ContainersNotInitialized", "containers with incomplete status: "+list(notInit)),
		set(corev1.ContainersReady, ready, readyReason, readyMsg),
		set(corev1.PodReady, podReady, podReason, podMsg),
		set(corev1.PodScheduled, true, "", ""),
	}
	for _, c := range prev { // conditions owned by others (readiness gates, disruption)
		if _, ours := findCondition(out, c.Type); !ours {
			out = append(out, c)
		}
	}
	return out
}

func incompleteInit(spec *corev1.PodSpec, init []corev1.ContainerStatus) []string {
	var out []string
	for _, c := range spec.InitContainers {
		st, ok := find(init, c.Name)
		if !ok || st.State.Terminated == nil || st.State.Terminated.ExitCode != 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

func unready(spec *corev1.PodSpec, containers []corev1.ContainerStatus) []string {
	var out []string
	for _, c := range spec.Containers {
		if st, ok := find(containers, c.Name); !ok || !st.Ready {
			out = append(out, c.Name)
		}
	}
	return out
}

func falseGates(spec *corev1.PodSpec, prev []corev1.PodCondition) []string {
	var out []string
	for _, g := range spec.ReadinessGates {
		if c, ok := findCondition(prev, g.ConditionType); !ok || c.Status != corev1.ConditionTrue {
			out = append(out, string(g.ConditionType))
		}
	}
	return out
}

func find(statuses []corev1.ContainerStatus, name string) (corev1.ContainerStatus, bool) {
	for _, s := range statuses {
		if s.Name == name {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

func findCondition(cs []corev1.PodCondition, t corev1.PodConditionType) (corev1.PodCondition, bool) {
	for _, c := range cs {
		if c.Type == t {
			return c, true
		}
	}
	return corev1.PodCondition{}, false
}

func list(names []string) string { return fmt.Sprintf("[%s]", strings.Join(names, " ")) }
