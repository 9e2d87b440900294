package nodeagent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventTimeout bounds an event write: events are best effort and must
// not hold up a container.
const eventTimeout = 5 * time.Second

// event records a core/v1 Event on pod (and one of its containers, if
// container is set) as a kubelet does, so `kubectl describe pod` tells
// why a pod is stuck. Failures are logged at debug level only.
func (a *Agent) event(p *corev1.Pod, container, typ, reason, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	now := metav1.Now()
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
	if container != "" {
		ref.FieldPath = fmt.Sprintf("spec.containers{%s}", container)
	}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.Name, now.UnixNano()), Namespace: p.Namespace},
		InvolvedObject: ref, Type: typ, Reason: reason, Message: msg, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "rotor-nodeagent", Host: a.cfg.NodeName},
	}
	if _, err := a.client.CoreV1().Events(p.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		a.log.Debug("record event failed", "reason", reason, "err", err)
	}
}
