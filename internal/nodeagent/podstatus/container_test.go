package podstatus

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestContainerTransitions(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(100, 0))
	st := corev1.ContainerStatus{Name: "c"}
	Waiting(&st, "ContainerCreating", "")
	Running(&st, corev1.ContainerStateRunning{StartedAt: t0}, "id-1", "img@sha256:1", false)
	if st.RestartCount != 0 || st.State.Running == nil || st.ContainerID != "id-1" {
		t.Fatalf("first run: %+v", st)
	}
	Terminated(&st, corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"})
	Waiting(&st, "CrashLoopBackOff", "back-off 10s")
	if st.LastTerminationState.Terminated == nil || st.LastTerminationState.Terminated.ExitCode != 3 || st.State.Waiting.Reason != "CrashLoopBackOff" {
		t.Fatalf("back-off after exit 3: %+v", st)
	}
	Running(&st, corev1.ContainerStateRunning{StartedAt: t0}, "id-2", "img@sha256:1", true)
	if st.RestartCount != 1 || st.LastTerminationState.Terminated.ExitCode != 3 {
		t.Fatalf("restart: %+v", st)
	}
	Terminated(&st, corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"})
	Running(&st, corev1.ContainerStateRunning{StartedAt: t0}, "id-3", "img@sha256:1", true)
	if st.RestartCount != 2 || st.LastTerminationState.Terminated.Reason != "Completed" {
		t.Fatalf("immediate restart: %+v", st)
	}
}

func TestLost(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(100, 0))
	t1 := metav1.NewTime(time.Unix(200, 0))
	prev := corev1.ContainerStatus{Name: "c", RestartCount: 4, ContainerID: "id-9",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t0}}}
	st := Lost(prev, "NodeAgentRestarted", corev1.ContainerStateTerminated{FinishedAt: t1})
	last := st.LastTerminationState.Terminated
	if st.RestartCount != 5 || last == nil || last.ExitCode != 137 || last.Reason != "NodeAgentRestarted" || !last.StartedAt.Equal(&t0) {
		t.Fatalf("lost running container: %+v (last %+v)", st, last)
	}
	exited := corev1.ContainerStatus{Name: "c", RestartCount: 1, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}
	if st := Lost(exited, "x", corev1.ContainerStateTerminated{}); st.RestartCount != 2 || st.LastTerminationState.Terminated.ExitCode != 1 {
		t.Fatalf("lost exited container: %+v", st)
	}
	waiting := corev1.ContainerStatus{Name: "c", RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}
	if st := Lost(waiting, "x", corev1.ContainerStateTerminated{}); st.RestartCount != 2 || st.LastTerminationState.Terminated != nil {
		t.Fatalf("lost waiting container: %+v", st)
	}
}
