package harness

import (
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func event(user, verb, group, resource, sub, ns, name string, code int) AuditEvent {
	e := AuditEvent{Stage: "ResponseComplete", Verb: verb}
	e.User.Username = user
	e.ResponseStatus.Code = code
	e.ObjectRef = &struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	}{group, resource, sub, ns, name}
	return e
}

// TestUnusedGrants: a rule counts as used only by a successful request of
// the same verb, group, resource (subresource included), namespace and
// name — or, for list, by an informer's watch-list request; everything
// else is reported.
func TestUnusedGrants(t *testing.T) {
	grants := []Grant{
		{Role: "propeller", Rule: rbacv1.PolicyRule{APIGroups: []string{"rotor.dev"}, Resources: []string{"workflows", "workflows/status"}, Verbs: []string{"list", "update"}}},
		{Role: "secrets", Namespace: "rotor-system", Rule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}},
		{Role: "scale", Namespace: "rotor-system", Rule: rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"statefulsets/scale"}, ResourceNames: []string{"rotor-propeller"}, Verbs: []string{"update"}}},
		{Role: "probe", Rule: rbacv1.PolicyRule{NonResourceURLs: []string{"/readyz"}, Verbs: []string{"get"}}},
		{Role: "informers", Rule: rbacv1.PolicyRule{APIGroups: []string{"rotor.dev"}, Resources: []string{"workflowtemplates", "clusters"}, Verbs: []string{"list"}}},
	}
	events := []AuditEvent{
		event("p", "list", "rotor.dev", "workflows", "", "", "", 200),
		event("p", "update", "rotor.dev", "workflows", "status", "team-a", "wf", 200),
		event("p", "update", "rotor.dev", "workflows", "", "team-a", "wf", 409), // conflict: not a use
		event("p", "get", "", "secrets", "", "other", "s", 200),                 // wrong namespace
		event("p", "update", "apps", "statefulsets", "scale", "rotor-system", "other", 200),
	}
	watchList := event("p", "watch", "rotor.dev", "workflowtemplates", "", "", "", 200)
	watchList.RequestURI = "/apis/rotor.dev/v1alpha1/workflowtemplates?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&watch=true"
	plainWatch := event("p", "watch", "rotor.dev", "clusters", "", "", "", 200)
	plainWatch.RequestURI = "/apis/rotor.dev/v1alpha1/clusters?watch=true"
	events = append(events, watchList, plainWatch)
	probe := AuditEvent{Stage: "ResponseComplete", Verb: "get", RequestURI: "/readyz?verbose"}
	probe.ResponseStatus.Code = 200
	events = append(events, probe)
	got := UnusedGrants(grants, events)
	want := []string{
		`informers: list clusters in group "rotor.dev" (cluster-wide)`,
		`propeller: list workflows/status in group "rotor.dev" (cluster-wide)`,
		`propeller: update workflows in group "rotor.dev" (cluster-wide)`,
		`scale: update statefulsets/scale in group "apps" named rotor-propeller in namespace rotor-system`,
		`secrets: get secrets in group "" in namespace rotor-system`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unused grants:\n%q\nwant\n%q", got, want)
	}
	if got := UnusedGrants(grants[3:4], events); len(got) != 0 {
		t.Fatalf("the /readyz probe should use its grant, got %q", got)
	}
}
