package pod

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/rotor-dev/rotor/plugins"
)

// systemReasons are pod failure reasons that are not the task's fault.
var systemReasons = map[string]bool{
	"Evicted": true, "NodeLost": true, "NodeAgentRestarted": true, "Preempting": true,
	"Shutdown": true, "NodeShutdown": true, "Terminated": true, "UnexpectedAdmissionError": true,
}

// StartGrace is how long a container may fail to start (image pull,
// config errors) before the attempt counts as a system failure and is
// retried, possibly elsewhere.
const StartGrace = 3 * time.Minute

// startFailures are waiting reasons of a container that cannot start.
var startFailures = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "CreateContainerConfigError": true,
	"CreateContainerError": true, "RunContainerError": true,
}

// phaseOf maps a pod's status to an attempt phase at time now. It is pure.
func phaseOf(pod *corev1.Pod, now time.Time) plugins.PhaseInfo {
	var started *time.Time
	if pod.Status.StartTime != nil {
		t := pod.Status.StartTime.Time
		started = &t
	}
	term := mainTerminated(pod)
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		info := plugins.PhaseInfo{Phase: plugins.PhaseSucceeded, StartedAt: started, ExitCode: ptr.To(int32(0))}
		if term != nil {
			info.Outputs = []byte(strings.TrimSpace(term.Message))
		}
		return info
	case corev1.PodFailed:
		if systemReasons[pod.Status.Reason] {
			return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: pod.Status.Reason, Message: pod.Status.Message, StartedAt: started}
		}
		info := plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: "ExitCode", StartedAt: started}
		if term != nil {
			info.ExitCode = ptr.To(term.ExitCode)
			info.Message = fmt.Sprintf("container exited with code %d", term.ExitCode)
			if term.Reason != "" && term.Reason != "Error" {
				info.Message += " (" + term.Reason + ")"
			}
			if m := strings.TrimSpace(term.Message); m != "" {
				info.Message += ": " + truncate(m, 512)
			}
		} else {
			info.Message = strings.TrimSpace("pod failed: " + pod.Status.Reason + " " + pod.Status.Message)
		}
		return info
	case corev1.PodRunning:
		return plugins.PhaseInfo{Phase: plugins.PhaseRunning, StartedAt: started, Message: "running on " + pod.Spec.NodeName}
	}
	msg := "pod pending"
	for _, cs := range pod.Status.ContainerStatuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch {
		case w.Reason == "InvalidImageName":
			return plugins.PhaseInfo{Phase: plugins.PhaseFailed, Reason: w.Reason, Message: "the image name is invalid: " + w.Message}
		case startFailures[w.Reason] && now.Sub(pod.CreationTimestamp.Time) > StartGrace:
			return plugins.PhaseInfo{Phase: plugins.PhaseSystemFailed, Reason: "NeverStarted",
				Message: fmt.Sprintf("the container did not start within %s (%s: %s)", StartGrace, w.Reason, w.Message)}
		case startFailures[w.Reason]:
			msg = fmt.Sprintf("waiting to start: %s: %s", w.Reason, w.Message)
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && c.Message != "" {
			msg = "pod unschedulable: " + c.Message
		}
	}
	return plugins.PhaseInfo{Phase: plugins.PhaseQueued, Reason: "PodPending", Message: msg}
}

func mainTerminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == ContainerName {
			return cs.State.Terminated
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
