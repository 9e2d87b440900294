package tenancy

import (
	"encoding/json"
	"sort"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// CheckSpec checks every task template a workflow spec defines, its own
// and those of inline sub-workflows at any depth, as the webhook sees
// them. Tasks of WorkflowTemplates and dynamic fragments are not here:
// the pod plugin checks them before their pods.
func (p Policy) CheckSpec(path *field.Path, spec *v1alpha1.WorkflowSpec) field.ErrorList {
	var errs field.ErrorList
	names := make([]string, 0, len(spec.Tasks))
	for n := range spec.Tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := spec.Tasks[n]
		errs = append(errs, p.CheckTask(path.Child("tasks").Key(n), &t)...)
	}
	sub := func(f *field.Path, w *v1alpha1.SubWorkflow) {
		if w == nil || w.Spec == nil {
			return
		}
		var inner v1alpha1.WorkflowSpec
		// One that does not decode is dag's to report.
		if json.Unmarshal(w.Spec.Raw, &inner) == nil {
			errs = append(errs, p.CheckSpec(f.Child("spec"), &inner)...)
		}
	}
	for i := range spec.Nodes {
		n := &spec.Nodes[i]
		np := path.Child("nodes").Index(i)
		sub(np.Child("workflow"), n.Workflow)
		if b := n.Branch; b != nil {
			for j := range b.Cases {
				sub(np.Child("branch", "cases").Index(j).Child("workflow"), b.Cases[j].Workflow)
			}
			if b.Else != nil {
				sub(np.Child("branch", "else", "workflow"), b.Else.Workflow)
			}
		}
	}
	return errs
}
