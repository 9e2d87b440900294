package dag

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// BuildNested validates a spec that runs inside another one or from a
// reference: an inline sub-workflow, a WorkflowTemplate, a dynamic
// fragment. On top of BuildScope it rejects the fields only a Workflow's
// own spec can mean (abort, approvals, recoverFrom, workflowTemplateRef).
// Its activeDeadline, clusterSelector, parallelism and onFailure apply to
// it where it runs.
func BuildNested(spec *v1alpha1.WorkflowSpec, enclosing map[string]v1alpha1.TaskTemplate, path *field.Path) (*Graph, field.ErrorList) {
	return build(spec, enclosing, nil, path, true)
}

// nestedOnly reports the fields of a nested spec that only a Workflow's
// own spec can mean.
func nestedOnly(spec *v1alpha1.WorkflowSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Abort {
		errs = append(errs, field.Invalid(path.Child("abort"), true, "only a Workflow can be aborted (rotor abort WORKFLOW stops its sub-workflows too)"))
	}
	if len(spec.Approvals) > 0 {
		first := slices.Sorted(maps.Keys(spec.Approvals))[0]
		errs = append(errs, field.Invalid(path.Child("approvals"), first, "approvals are given on the Workflow, by the gate's path (rotor approve WORKFLOW NODE/GATE)"))
	}
	if spec.RecoverFrom != "" {
		errs = append(errs, field.Invalid(path.Child("recoverFrom"), spec.RecoverFrom, "only a Workflow recovers from an earlier one"))
	}
	if spec.WorkflowTemplateRef != "" {
		errs = append(errs, field.Invalid(path.Child("workflowTemplateRef"), spec.WorkflowTemplateRef, "a nested workflow runs a template with a node's workflow.templateRef"))
	}
	return errs
}

// templateRefOnly reports the fields of a workflow that runs a template
// which the template's DAG gives: the workflow's own would be ignored.
// Its activeDeadline and clusterSelector apply together with the
// template's.
func templateRefOnly(spec *v1alpha1.WorkflowSpec, root *field.Path) field.ErrorList {
	var errs field.ErrorList
	what := "a workflow that runs a template takes its %s from the template"
	if len(spec.Outputs) > 0 {
		errs = append(errs, field.Invalid(root.Child("outputs"), slices.Sorted(maps.Keys(spec.Outputs))[0], fmt.Sprintf(what, "outputs")))
	}
	if spec.Parallelism != nil {
		errs = append(errs, field.Invalid(root.Child("parallelism"), *spec.Parallelism, fmt.Sprintf(what, "parallelism")))
	}
	if spec.OnFailure != nil {
		errs = append(errs, field.Invalid(root.Child("onFailure"), spec.OnFailure.Name, fmt.Sprintf(what, "onFailure")))
	}
	return errs
}

// MergeSelectors combines an enclosing clusterSelector with a nested
// one: a task must match both. A key the two give different values
// is an error, since no cluster could match.
func MergeSelectors(outer, inner map[string]string) (map[string]string, error) {
	if len(inner) == 0 {
		return outer, nil
	}
	out := maps.Clone(outer)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(inner)) {
		if v, ok := out[k]; ok && v != inner[k] {
			return nil, &SelectorConflict{Key: k, Inner: inner[k], Outer: v}
		}
		out[k] = inner[k]
	}
	return out, nil
}

// SelectorConflict is a nested clusterSelector pair that contradicts an
// enclosing one.
type SelectorConflict struct{ Key, Inner, Outer string }

func (c *SelectorConflict) Error() string {
	return fmt.Sprintf("%s=%s contradicts %s=%s of an enclosing clusterSelector: no cluster could run these tasks", c.Key, c.Inner, c.Key, c.Outer)
}

// nestedSelector is the selector the tasks of a nested spec are placed
// with, inside a DAG placed with outer.
func nestedSelector(outer map[string]string, spec *v1alpha1.WorkflowSpec, path *field.Path) (map[string]string, field.ErrorList) {
	sel, err := MergeSelectors(outer, spec.ClusterSelector)
	if c, ok := err.(*SelectorConflict); ok {
		return outer, field.ErrorList{field.Invalid(path.Child("clusterSelector").Key(c.Key), c.Inner, c.Error())}
	}
	return sel, nil
}
