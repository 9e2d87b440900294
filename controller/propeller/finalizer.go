package propeller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/internal/tracing"
)

// Finalizer keeps a deleted Workflow until its pods in the target clusters
// are gone.
const Finalizer = "rotor.dev/cleanup"

func hasFinalizer(wf *v1alpha1.Workflow) bool { return slices.Contains(wf.Finalizers, Finalizer) }

// finalize deletes the workflow's pods everywhere, then lets it go.
func (c *Controller) finalize(ctx context.Context, cached *v1alpha1.Workflow) error {
	if !hasFinalizer(cached) {
		return nil
	}
	skipped, err := c.exec.Cleanup(ctx, cached)
	if err != nil {
		return fmt.Errorf("clean up pods of deleted workflow %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	if len(skipped) > 0 {
		msg := "pods on clusters no longer registered were left behind: " + strings.Join(skipped, ", ")
		c.log.WarnContext(ctx, "workflow deleted with pods left behind", "namespace", cached.Namespace, "workflow", cached.Name, "pods", skipped)
		c.events.Event(cached, corev1.EventTypeWarning, "CleanupIncomplete", eventMessage(msg))
	}
	wf := cached.DeepCopy()
	wf.Finalizers = slices.DeleteFunc(wf.Finalizers, func(f string) bool { return f == Finalizer })
	wctx, span := tracing.Start(ctx, "kube.update", attribute.String("what", "finalizer"))
	_, err = c.client.RotorV1alpha1().Workflows(wf.Namespace).Update(wctx, wf, metav1.UpdateOptions{})
	tracing.End(span, err)
	if err != nil {
		return fmt.Errorf("remove finalizer from %s/%s: %w", wf.Namespace, wf.Name, err)
	}
	c.log.InfoContext(ctx, "workflow deleted and its pods cleaned up", "namespace", wf.Namespace, "workflow", wf.Name)
	return nil
}
