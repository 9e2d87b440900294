package nodeagent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/internal/nodeagent/podstatus"
)

// statusRetry is the wait before retrying a failed status write.
const statusRetry = time.Second

// writeLoop writes the pod's status each time a container's changed,
// until ctx ends. Changes that come while a write is in flight coalesce.
func (w *imagePod) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		}
		if err := w.flush(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("write pod status failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(statusRetry):
			}
			w.notify()
		}
	}
}

// flush computes the pod's status and writes it if it differs from the
// last one written: only changes reach the API server.
func (w *imagePod) flush(ctx context.Context) error {
	w.mu.Lock()
	want := podstatus.Status(podstatus.Input{Spec: &w.pod.Spec, Base: w.base, Init: w.init, Containers: w.apps, Now: metav1.Now()})
	same := w.written && apiequality.Semantic.DeepEqual(want, w.base)
	w.mu.Unlock()
	if same {
		return nil
	}
	err := w.rt.a.updateStatus(ctx, w.pod, func(s *corev1.PodStatus) { apply(s, want) })
	if apierrors.IsNotFound(err) {
		return nil // deleted: nobody will read it
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.base, w.written = want, true
	w.mu.Unlock()
	w.log.Debug("pod status written", "phase", want.Phase, "ready", podReady(want))
	return nil
}

// apply copies the fields the runtime owns into the stored status,
// keeping the rest and conditions others set (readiness gates,
// DisruptionTarget).
func apply(s *corev1.PodStatus, want corev1.PodStatus) {
	conds := append([]corev1.PodCondition(nil), want.Conditions...)
	for _, c := range s.Conditions {
		if !hasCondition(want.Conditions, c.Type) {
			conds = append(conds, c)
		}
	}
	s.Phase, s.Conditions, s.Reason, s.Message = want.Phase, conds, want.Reason, want.Message
	s.HostIP, s.HostIPs, s.PodIP, s.PodIPs = want.HostIP, want.HostIPs, want.PodIP, want.PodIPs
	s.StartTime = want.StartTime
	s.InitContainerStatuses, s.ContainerStatuses = want.InitContainerStatuses, want.ContainerStatuses
}

func hasCondition(cs []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range cs {
		if c.Type == t {
			return true
		}
	}
	return false
}

func podReady(s corev1.PodStatus) bool {
	for _, c := range s.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
