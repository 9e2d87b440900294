// Package admission is Rotor's validating admission webhook: the control
// apiserver sends it every Workflow and WorkflowTemplate created or
// updated, and it refuses what `rotor validate` refuses, with the same
// messages, so `kubectl apply` of a cyclic or misspelt workflow fails at
// once instead of when the engine first reads it.
//
// It also keeps a Workflow's spec fixed once created, except the two
// fields that are how users steer a running workflow (abort, approvals):
// the engine's status describes the spec it ran, and a changed spec would
// make that status a lie.
//
// The webhook is for feedback, not enforcement: the engine validates every
// object again (an object may have got in while the webhook was down, its
// failurePolicy being Ignore), failing an invalid workflow with reason
// InvalidSpec. Review is a pure function of the request; Handler is its
// HTTP shell.
package admission

import (
	"encoding/json"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/dag"
	"github.com/rotor-dev/rotor/controller/tenancy"
)

// DefaultMaxObjectBytes bounds a Workflow or WorkflowTemplate as sent.
// etcd refuses objects over 1.5 MiB, and a Workflow's status grows with
// every node it runs, so a spec that takes most of that budget would fail
// later, mid-run, on a status write; refusing it at apply says why.
const DefaultMaxObjectBytes = 1 << 20

// Path is where Handler is served.
const Path = "/validate"

// Options tune Review.
type Options struct {
	// MaxObjectBytes bounds the object (default DefaultMaxObjectBytes).
	MaxObjectBytes int
	// Policies, if set, finds the TenantPolicy of the request's namespace:
	// a valid object whose tasks ask for pod settings it does not allow
	// is refused (Forbidden), as the engine would fail them PolicyDenied.
	Policies Policies
}

// Policies finds the tenant policy of a namespace (tenancy.Source).
type Policies interface {
	For(namespace string) (tenancy.Policy, error)
}

// Review answers one admission request. It never returns nil.
func Review(req *admissionv1.AdmissionRequest, o Options) *admissionv1.AdmissionResponse {
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = DefaultMaxObjectBytes
	}
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	deny := func(code int32, reason metav1.StatusReason, msg string) *admissionv1.AdmissionResponse {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}
		return resp
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return resp
	}
	if req.Kind.Group != v1alpha1.SchemeGroupVersion.Group || req.Kind.Version != v1alpha1.SchemeGroupVersion.Version {
		return deny(400, metav1.StatusReasonBadRequest, fmt.Sprintf("the Rotor webhook validates %s objects, not %s: fix the webhook configuration's rules",
			v1alpha1.SchemeGroupVersion, req.Kind))
	}
	kind := strings.ToLower(req.Kind.Kind)
	if n := len(req.Object.Raw); n > o.MaxObjectBytes {
		return deny(413, metav1.StatusReasonRequestEntityTooLarge, fmt.Sprintf(
			"%s %s is %d bytes; the limit is %d (the manager's --webhook-max-object-bytes): the status grows with every node and the object must stay under etcd's 1.5 MiB; split it into WorkflowTemplates run as sub-workflows, or use a map",
			kind, req.Name, n, o.MaxObjectBytes))
	}
	var errs field.ErrorList
	switch req.Kind.Kind {
	case "Workflow":
		wf := &v1alpha1.Workflow{}
		if err := decode(req.Object.Raw, wf); err != nil {
			return deny(400, metav1.StatusReasonBadRequest, fmt.Sprintf("%s %s: %v", kind, req.Name, err))
		}
		if req.Operation == admissionv1.Update {
			old := &v1alpha1.Workflow{}
			if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
				return deny(400, metav1.StatusReasonBadRequest, fmt.Sprintf("workflow %s: the stored object does not decode: %v", req.Name, err))
			}
			if msg := changed(&old.Spec, &wf.Spec); msg != "" {
				return deny(422, metav1.StatusReasonInvalid, fmt.Sprintf("workflow %s: %s", req.Name, msg))
			}
			// What was admitted once is not judged again: a workflow
			// admitted by an older Rotor must still take its finalizer,
			// an abort or an approval.
			return resp
		}
		if _, errs = dag.Build(&wf.Spec); len(errs) == 0 {
			return o.judge(resp, req, kind, &wf.Spec, deny)
		}
	case "WorkflowTemplate":
		tpl := &v1alpha1.WorkflowTemplate{}
		if err := decode(req.Object.Raw, tpl); err != nil {
			return deny(400, metav1.StatusReasonBadRequest, fmt.Sprintf("%s %s: %v", kind, req.Name, err))
		}
		if _, errs = dag.BuildNested(&tpl.Spec, nil, field.NewPath("spec")); len(errs) == 0 {
			return o.judge(resp, req, kind, &tpl.Spec, deny)
		}
	default:
		return resp // not ours to judge (a rule that sends more than it should)
	}
	if len(errs) > 0 {
		return deny(422, metav1.StatusReasonInvalid, dag.Message(kind, errs))
	}
	return resp
}

// judge refuses a valid spec whose tasks the namespace's tenant policy
// does not allow.
func (o Options) judge(resp *admissionv1.AdmissionResponse, req *admissionv1.AdmissionRequest, kind string, spec *v1alpha1.WorkflowSpec,
	deny func(int32, metav1.StatusReason, string) *admissionv1.AdmissionResponse) *admissionv1.AdmissionResponse {
	if o.Policies == nil {
		return resp
	}
	pol, err := o.Policies.For(req.Namespace)
	if err != nil {
		return deny(403, metav1.StatusReasonForbidden, fmt.Sprintf("%s %s: %v", kind, req.Name, err))
	}
	if errs := pol.CheckSpec(field.NewPath("spec"), spec); len(errs) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s asks for pod settings namespace %s may not use:", kind, req.Name, req.Namespace)
		for _, e := range errs {
			fmt.Fprintf(&b, "\n  %s", e.Error())
		}
		fmt.Fprintf(&b, "\nchange the tasks, or ask the platform team to allow them in %s", pol)
		return deny(403, metav1.StatusReasonForbidden, b.String())
	}
	return resp
}

// decode reads obj. Not strictly: the apiserver has pruned fields its
// schema does not know before admission, and a manager older than the CRD
// must not refuse the fields a newer one added.
func decode(raw []byte, obj any) error {
	if err := json.Unmarshal(raw, obj); err != nil {
		return fmt.Errorf("does not decode: %w", err)
	}
	return nil
}

// changed says what a Workflow update changed that it may not, or "".
func changed(old, new *v1alpha1.WorkflowSpec) string {
	if old.Abort && !new.Abort {
		return "spec.abort cannot be undone: an aborted workflow stays aborted; relaunch it (rotor relaunch) to run it again"
	}
	for node, answer := range old.Approvals {
		if got, ok := new.Approvals[node]; !ok || got != answer {
			return fmt.Sprintf("spec.approvals[%s] is already %q and cannot change", node, answer)
		}
	}
	o, n := *old, *new
	o.Abort, n.Abort = false, false
	o.Approvals, n.Approvals = nil, nil
	if !apiequality.Semantic.DeepEqual(o, n) {
		return "the spec is immutable once created, except spec.abort and spec.approvals: " +
			"delete and create it again, or run `rotor relaunch` to start a new execution"
	}
	return ""
}
