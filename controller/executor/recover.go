package executor

import (
	"fmt"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// Workflows finds other executions, for recovery.
type Workflows interface {
	Get(namespace, name string) (*v1alpha1.Workflow, error)
}

// recover copies, once, every node that succeeded in spec.recoverFrom:
// its outputs are reused and it is not run again. Nested nodes count on
// their own, so a failed sub-workflow or map re-runs only its failed part.
// Snapshots (templates, fragments) of nodes that did not succeed are not
// copied: they are taken again.
func (r *round) recover() error {
	st := &r.wf.Status
	from := r.wf.Spec.RecoverFrom
	if from == "" || st.Recovered != nil {
		return nil
	}
	if r.Workflows == nil {
		return fmt.Errorf("spec.recoverFrom: other workflows are not available to this engine")
	}
	src, err := r.Workflows.Get(r.wf.Namespace, from)
	if err != nil {
		return fmt.Errorf("spec.recoverFrom: workflow %s/%s: %v", r.wf.Namespace, from, err)
	}
	if src.UID == r.wf.UID {
		return fmt.Errorf("spec.recoverFrom: a workflow cannot recover from itself")
	}
	if src.Status.TemplateSpec != nil && st.TemplateSpec == nil {
		st.TemplateSpec = src.Status.TemplateSpec.DeepCopy()
	}
	n := int32(0)
	srcNodes, err := src.Status.AllNodes()
	if err != nil {
		return fmt.Errorf("spec.recoverFrom: %w", err)
	}
	for id, ns := range srcNodes {
		if ns.Phase != v1alpha1.NodeSucceeded {
			continue
		}
		c := *ns.DeepCopy()
		c.Attempts, c.Reason = nil, v1alpha1.ReasonRecovered
		c.Message = fmt.Sprintf("recovered from %s", from)
		c.StartedAt, c.FinishedAt = &r.now, &r.now
		st.Nodes[id] = c
		n++
	}
	st.Recovered = &n
	return nil
}
