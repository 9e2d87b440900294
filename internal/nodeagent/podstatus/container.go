package podstatus

import (
	corev1 "k8s.io/api/core/v1"
)

// The transitions of one container's status, as a kubelet shows them. A
// run that ended moves to LastTerminationState when the container waits
// (back-off, re-pull) or runs again.

// Waiting puts st in the waiting state with reason and message.
func Waiting(st *corev1.ContainerStatus, reason, message string) {
	keepLast(st)
	st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	st.Ready, st.Started = false, ptr(false)
}

// Running records a run that started; restarted counts it in
// restartCount (every run but a pod's first of that container).
func Running(st *corev1.ContainerStatus, started corev1.ContainerStateRunning, containerID, imageID string, restarted bool) {
	keepLast(st)
	if restarted {
		st.RestartCount++
	}
	st.State = corev1.ContainerState{Running: &started}
	st.ContainerID, st.ImageID = containerID, imageID
	st.Ready, st.Started = false, ptr(false)
}

// Terminated records how a run ended.
func Terminated(st *corev1.ContainerStatus, t corev1.ContainerStateTerminated) {
	st.State = corev1.ContainerState{Terminated: &t}
	st.Ready, st.Started = false, ptr(false)
}

// Lost is the status a container gets when the agent running it went
// away: a running one ended with reason (exit 137, as if killed), and the
// next run of one that ran is a restart.
func Lost(prev corev1.ContainerStatus, reason string, now corev1.ContainerStateTerminated) corev1.ContainerStatus {
	st := corev1.ContainerStatus{Name: prev.Name, Image: prev.Image, RestartCount: prev.RestartCount, LastTerminationState: prev.LastTerminationState}
	if r := prev.State.Running; r != nil {
		now.ExitCode, now.Reason, now.StartedAt, now.ContainerID = 137, reason, r.StartedAt, prev.ContainerID
		st.LastTerminationState = corev1.ContainerState{Terminated: &now}
		st.RestartCount++
	}
	if t := prev.State.Terminated; t != nil {
		st.LastTerminationState = corev1.ContainerState{Terminated: t}
		st.RestartCount++
	}
	return st
}

func keepLast(st *corev1.ContainerStatus) {
	if st.State.Terminated != nil {
		st.LastTerminationState = corev1.ContainerState{Terminated: st.State.Terminated}
	}
}

func ptr[T any](v T) *T { return &v }
