package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
	"github.com/rotor-dev/rotor/controller/manifest"
	"github.com/rotor-dev/rotor/controller/tenancy"
)

const valid = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: ok, namespace: team-a}
spec:
  tasks:
    t: {container: {image: busybox, command: [sh, -c, exit]}}
  nodes:
  - {name: a, task: t}
  - {name: gate, gate: {approve: {}}, dependsOn: [a]}
  - {name: b, task: t, dependsOn: [gate]}
`

const cyclic = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: loop, namespace: team-a}
spec:
  tasks:
    t: {container: {image: busybox, command: [sh, -c, exit]}}
  nodes:
  - {name: a, task: t, dependsOn: [b]}
  - {name: b, task: t, dependsOn: [a]}
`

const badTemplate = `apiVersion: rotor.dev/v1alpha1
kind: WorkflowTemplate
metadata: {name: tpl, namespace: team-a}
spec:
  nodes:
  - {name: a, task: missing}
`

const privileged = `apiVersion: rotor.dev/v1alpha1
kind: Workflow
metadata: {name: root, namespace: team-a}
spec:
  tasks:
    t:
      container: {image: busybox, securityContext: {privileged: true}}
      pod: {serviceAccountName: admin}
  nodes:
  - {name: a, task: t}
`

// onePolicy gives every namespace the same policy (or error).
type onePolicy struct {
	p   tenancy.Policy
	err error
}

func (o onePolicy) For(string) (tenancy.Policy, error) { return o.p, o.err }

var tenants = Options{Policies: onePolicy{p: tenancy.Builtin}}

func raw(t *testing.T, yaml string) []byte {
	t.Helper()
	docs, err := manifest.ToJSON([]byte(yaml))
	if err != nil || len(docs) != 1 {
		t.Fatalf("manifest: %v (%d docs)", err, len(docs))
	}
	return docs[0]
}

func request(kind string, op admissionv1.Operation, obj, old []byte) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Group: "rotor.dev", Version: "v1alpha1", Kind: kind},
		Operation: op, Name: "x", Namespace: "team-a",
		Object: runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old},
	}
}

// edit returns the JSON of yaml's object after f changed its spec.
func edit(t *testing.T, yaml string, f func(spec map[string]any)) []byte {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(raw(t, yaml), &obj); err != nil {
		t.Fatal(err)
	}
	f(obj["spec"].(map[string]any))
	b, _ := json.Marshal(obj)
	return b
}

func TestReview(t *testing.T) {
	approved := edit(t, valid, func(s map[string]any) { s["approvals"] = map[string]any{"gate": "approve"} })
	for _, tc := range []struct {
		name     string
		req      *admissionv1.AdmissionRequest
		opts     Options
		allowed  bool
		code     int32
		contains []string
	}{
		{"a valid workflow", request("Workflow", admissionv1.Create, raw(t, valid), nil), Options{}, true, 0, nil},
		{"a cycle is named", request("Workflow", admissionv1.Create, raw(t, cyclic), nil), Options{}, false, 422,
			[]string{"invalid workflow:\n  spec.nodes: Invalid value: ", "a -> b -> a", "the nodes form a cycle"}},
		{"an invalid template", request("WorkflowTemplate", admissionv1.Create, raw(t, badTemplate), nil), Options{}, false, 422,
			[]string{"invalid workflowtemplate:", `spec.nodes[0].task: Not found: "missing (tasks: none)"`}},
		{"too large", request("Workflow", admissionv1.Create, raw(t, valid), nil), Options{MaxObjectBytes: 100}, false, 413,
			[]string{"the limit is 100 (the manager's --webhook-max-object-bytes)"}},
		{"the spec changed", request("Workflow", admissionv1.Update,
			edit(t, valid, func(s map[string]any) { s["nodes"] = s["nodes"].([]any)[:1] }), raw(t, valid)), Options{}, false, 422,
			[]string{"the spec is immutable once created, except spec.abort and spec.approvals"}},
		{"an abort", request("Workflow", admissionv1.Update, edit(t, valid, func(s map[string]any) { s["abort"] = true }), raw(t, valid)), Options{}, true, 0, nil},
		{"an approval", request("Workflow", admissionv1.Update, approved, raw(t, valid)), Options{}, true, 0, nil},
		{"an approval changed", request("Workflow", admissionv1.Update,
			edit(t, valid, func(s map[string]any) { s["approvals"] = map[string]any{"gate": "reject"} }), approved), Options{}, false, 422,
			[]string{`spec.approvals[gate] is already "approve"`}},
		{"an abort undone", request("Workflow", admissionv1.Update, raw(t, valid), edit(t, valid, func(s map[string]any) { s["abort"] = true })), Options{}, false, 422,
			[]string{"spec.abort cannot be undone"}},
		{"metadata only (a finalizer)", request("Workflow", admissionv1.Update, raw(t, valid), raw(t, valid)), Options{}, true, 0, nil},
		{"not json", request("Workflow", admissionv1.Create, []byte("{"), nil), Options{}, false, 400, []string{"does not decode"}},
		{"another group", &admissionv1.AdmissionRequest{UID: "uid-1", Operation: admissionv1.Create,
			Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}}, Options{}, false, 400, []string{"fix the webhook configuration's rules"}},
		{"a delete", request("Workflow", admissionv1.Delete, nil, raw(t, cyclic)), Options{}, true, 0, nil},
		{"a privileged task", request("Workflow", admissionv1.Create, raw(t, privileged), nil), tenants, false, 403,
			[]string{"spec.tasks[t].container.securityContext.privileged", "spec.tasks[t].pod.serviceAccountName",
				"namespace team-a may not use", "built-in tenant policy"}},
		{"a privileged template", request("WorkflowTemplate", admissionv1.Create, raw(t, privileged), nil), tenants, false, 403,
			[]string{"spec.tasks[t].container.securityContext.privileged"}},
		{"allowed by the tenant's policy", request("Workflow", admissionv1.Create, raw(t, privileged), nil),
			Options{Policies: onePolicy{tenancy.Policy{Name: "ops", Spec: v1alpha1.TenantPolicySpec{Privileged: true, ServiceAccounts: []string{"admin"}}}, nil}}, true, 0, nil},
		{"two policies select the namespace", request("Workflow", admissionv1.Create, raw(t, valid), nil),
			Options{Policies: onePolicy{err: errors.New("namespace team-a is selected by TenantPolicies a, b")}}, false, 403, []string{"TenantPolicies a, b"}},
		{"a valid workflow under the policy", request("Workflow", admissionv1.Create, raw(t, valid), nil), tenants, true, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := Review(tc.req, tc.opts)
			if resp.UID != "uid-1" || resp.Allowed != tc.allowed {
				t.Fatalf("response %+v (result %+v); want allowed=%v for uid-1", resp, resp.Result, tc.allowed)
			}
			if tc.allowed {
				return
			}
			if resp.Result == nil || resp.Result.Code != tc.code {
				t.Fatalf("result %+v, want code %d", resp.Result, tc.code)
			}
			for _, c := range tc.contains {
				if !strings.Contains(resp.Result.Message, c) {
					t.Errorf("message %q does not contain %q", resp.Result.Message, c)
				}
			}
		})
	}
}

func review(t *testing.T, obj []byte) []byte {
	t.Helper()
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  request("Workflow", admissionv1.Create, obj, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(&Handler{})
	defer srv.Close()
	post := func(body []byte) (*http.Response, *admissionv1.AdmissionReview) {
		resp, err := http.Post(srv.URL+Path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ar admissionv1.AdmissionReview
		_ = json.NewDecoder(resp.Body).Decode(&ar)
		return resp, &ar
	}
	resp, ar := post(review(t, raw(t, cyclic)))
	if resp.StatusCode != 200 || ar.Kind != "AdmissionReview" || ar.Response == nil || ar.Response.Allowed || ar.Response.UID != "uid-1" ||
		!strings.Contains(ar.Response.Result.Message, "the nodes form a cycle") {
		t.Fatalf("cyclic: status %d, review %+v", resp.StatusCode, ar)
	}
	if resp, ar = post(review(t, raw(t, valid))); resp.StatusCode != 200 || ar.Response == nil || !ar.Response.Allowed {
		t.Fatalf("valid: status %d, review %+v", resp.StatusCode, ar)
	}
	if resp, _ = post([]byte(`{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}`)); resp.StatusCode != 400 {
		t.Fatalf("v1beta1: status %d, want 400", resp.StatusCode)
	}
	if resp, _ = post(bytes.Repeat([]byte(" "), 4<<20)); resp.StatusCode != 413 {
		t.Fatalf("4 MiB body: status %d, want 413", resp.StatusCode)
	}
}

// FuzzReview: whatever the apiserver (or anyone reaching the port) sends,
// the webhook answers without panicking, and an answer is for the request
// it was given.
func FuzzReview(f *testing.F) {
	for _, y := range []string{valid, cyclic, badTemplate} {
		docs, _ := manifest.ToJSON([]byte(y))
		b, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Update,
				Kind:   metav1.GroupVersionKind{Group: "rotor.dev", Version: "v1alpha1", Kind: "Workflow"},
				Object: runtime.RawExtension{Raw: docs[0]}, OldObject: runtime.RawExtension{Raw: docs[0]}},
		})
		f.Add(b)
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"group":"rotor.dev","version":"v1alpha1","kind":"Workflow"},"object":{"spec":{"nodes":[{"name":"a","map":{}}]}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ar, err := DecodeReview(body)
		if err != nil {
			return
		}
		resp := Review(ar.Request, Options{})
		if resp == nil || resp.UID != ar.Request.UID {
			t.Fatalf("response %+v for request uid %q", resp, ar.Request.UID)
		}
		if !resp.Allowed && (resp.Result == nil || resp.Result.Message == "") {
			t.Fatalf("a denial without a message: %+v", resp)
		}
	})
}
