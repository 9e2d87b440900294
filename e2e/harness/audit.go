package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
)

// AuditEvent is the part of one apiserver audit event the tests read.
type AuditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	// ImpersonatedUser is who the request acted as (impersonation).
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser,omitempty"`
	ObjectRef *struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	StageTimestamp time.Time `json:"stageTimestamp"`
}

// Write reports whether the event changed something.
func (e *AuditEvent) Write() bool {
	switch e.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// Resource is "resource" or "resource/subresource" ("" for a
// non-resource request).
func (e *AuditEvent) Resource() string {
	if e.ObjectRef == nil {
		return ""
	}
	if e.ObjectRef.Subresource != "" {
		return e.ObjectRef.Resource + "/" + e.ObjectRef.Subresource
	}
	return e.ObjectRef.Resource
}

// ReadAudit reads the completed requests of an audit log.
func ReadAudit(path string) ([]AuditEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev AuditEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Stage != "ResponseComplete" {
			continue
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

// Grant is one RBAC rule as it applies to one subject: the rule, where it
// applies ("" for every namespace: a ClusterRole bound cluster-wide), and
// the role that grants it.
type Grant struct {
	Role      string
	Namespace string
	Rule      rbacv1.PolicyRule
}

// UnusedGrants returns, for each grant, the verbs and resources (or
// non-resource URLs) of it that no successful request among events used,
// one line each. A grant with an empty result is fully used: the test of
// least privilege is that this list is empty.
func UnusedGrants(grants []Grant, events []AuditEvent) []string {
	var out []string
	for _, g := range grants {
		for _, verb := range g.Rule.Verbs {
			for _, res := range append(g.Rule.Resources, g.Rule.NonResourceURLs...) {
				groups := g.Rule.APIGroups
				if len(g.Rule.NonResourceURLs) > 0 {
					groups = []string{""}
				}
				for _, group := range groups {
					if !used(g, group, res, verb, events) {
						out = append(out, fmt.Sprintf("%s: %s %s in group %q%s%s", g.Role, verb, res, group, names(g.Rule.ResourceNames), scope(g.Namespace)))
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// used reports whether a successful request used verb on res. An
// informer's first sync is a watch with sendInitialEvents=true (client-go
// and kube-apiserver have WatchList on by default) where it used to be a
// list; the informer falls back to a plain list when that fails, so list
// stays granted, and such a watch counts as its use.
func used(g Grant, group, res, verb string, events []AuditEvent) bool {
	for i := range events {
		e := &events[i]
		if e.ResponseStatus.Code >= 400 {
			continue
		}
		if e.Verb != verb && !(verb == "list" && e.Verb == "watch" && strings.Contains(e.RequestURI, "sendInitialEvents=true")) {
			continue
		}
		if e.ObjectRef == nil {
			if path, _, _ := strings.Cut(e.RequestURI, "?"); path == res {
				return true
			}
			continue
		}
		if e.ObjectRef.APIGroup != group || e.Resource() != res {
			continue
		}
		if g.Namespace != "" && e.ObjectRef.Namespace != g.Namespace {
			continue
		}
		if len(g.Rule.ResourceNames) > 0 && !contains(g.Rule.ResourceNames, e.ObjectRef.Name) {
			continue
		}
		return true
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func names(n []string) string {
	if len(n) == 0 {
		return ""
	}
	return " named " + strings.Join(n, ",")
}

func scope(ns string) string {
	if ns == "" {
		return " (cluster-wide)"
	}
	return " in namespace " + ns
}
