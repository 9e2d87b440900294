// Package placement chooses the target cluster of one task attempt. It is
// pure: the caller passes what it knows of every cluster (labels, health,
// taints, capacity and load) and the attempt's constraints, and gets a
// cluster or, when none fits, the reason each one was left out.
//
// The rules, in order:
//
//  1. Filters. A cluster is out if its labels miss a pair of the task's or
//     the workflow's clusterSelector, if the tenant may not use it, if it
//     carries a NoSchedule or NoExecute taint (cordoned or drained), if it
//     is not Ready, or if its task pods in flight reached maxTaskPods.
//  2. Failover group. Of the clusters left, only those of the lowest
//     failoverGroup take the attempt, so a backup group gets work only while
//     every cluster of the groups before it is out.
//  3. Choice. Weighted rendezvous hashing of the attempt's key over that
//     group, each weight scaled by the cluster's free share of capacity:
//     the same attempt and the same state always give the same cluster,
//     work spreads by weight, and fuller clusters are chosen less.
package placement

import (
	"fmt"
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rotor-dev/rotor/internal/mixhash"
)

// Cluster is what placement knows of one target cluster.
type Cluster struct {
	Name   string
	Labels map[string]string
	// Weight biases the choice; 0 is taken as 1.
	Weight int32
	// Group is the failover group: lower groups are preferred.
	Group  int32
	Taints []corev1.Taint
	// Ready is false while the cluster is unreachable, not ready, or its
	// credentials are broken; NotReady says why.
	Ready    bool
	NotReady string
	// Max caps task pods in flight (0: no cap); InFlight counts them.
	Max, InFlight int
}

// Request is one attempt to place.
type Request struct {
	// Key identifies the attempt (namespace/workflow/node/attempt); it
	// makes the choice deterministic.
	Key string
	// TaskSelector and WorkflowSelector must both match a cluster's labels.
	TaskSelector, WorkflowSelector map[string]string
	// Allowed, when not nil, lists the only clusters the tenant may use.
	Allowed []string
}

// Rejection says why a cluster was left out.
type Rejection struct {
	Cluster string
	Reason  string
	// Full: capacity was the only reason (it fits once a pod ends).
	Full bool
}

// NoFit is the error when no cluster takes the attempt.
type NoFit struct {
	Rejections []Rejection
}

func (e *NoFit) Error() string {
	if len(e.Rejections) == 0 {
		return "no target cluster is registered: create a Cluster object (see docs/operations.md)"
	}
	parts := make([]string, len(e.Rejections))
	for i, r := range e.Rejections {
		parts[i] = r.Cluster + ": " + r.Reason
	}
	return "no target cluster fits: " + strings.Join(parts, "; ")
}

// OnlyFull reports whether every cluster was left out for lack of room
// alone (the attempt will fit as soon as a pod ends).
func (e *NoFit) OnlyFull() bool {
	for _, r := range e.Rejections {
		if !r.Full {
			return false
		}
	}
	return len(e.Rejections) > 0
}

// Place returns the cluster for req, or a *NoFit naming every cluster
// and why it was left out.
func Place(req Request, clusters []Cluster) (string, error) {
	var allowed map[string]bool
	if req.Allowed != nil {
		allowed = make(map[string]bool, len(req.Allowed))
		for _, n := range req.Allowed {
			allowed[n] = true
		}
	}
	var fit []Cluster
	var rejected []Rejection
	for _, c := range clusters {
		if why, full := filter(req, allowed, c); why != "" {
			rejected = append(rejected, Rejection{Cluster: c.Name, Reason: why, Full: full})
			continue
		}
		fit = append(fit, c)
	}
	if len(fit) == 0 {
		sort.Slice(rejected, func(i, j int) bool { return rejected[i].Cluster < rejected[j].Cluster })
		return "", &NoFit{Rejections: rejected}
	}
	group := fit[0].Group
	for _, c := range fit[1:] {
		group = min(group, c.Group)
	}
	best, bestScore := "", math.Inf(-1)
	for _, c := range fit {
		if c.Group != group {
			continue
		}
		s := score(req.Key, c)
		if s > bestScore || (s == bestScore && c.Name < best) {
			best, bestScore = c.Name, s
		}
	}
	return best, nil
}

// filter says why c cannot take the attempt ("" if it can), and whether
// lack of room is the reason.
func filter(req Request, allowed map[string]bool, c Cluster) (string, bool) {
	if k, v, ok := mismatch(req.TaskSelector, c.Labels); ok {
		return fmt.Sprintf("does not match the task's clusterSelector %s=%s", k, v), false
	}
	if k, v, ok := mismatch(req.WorkflowSelector, c.Labels); ok {
		return fmt.Sprintf("does not match the workflow's clusterSelector %s=%s", k, v), false
	}
	if allowed != nil && !allowed[c.Name] {
		return "not among the tenant's allowed clusters", false
	}
	for _, t := range c.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return fmt.Sprintf("tainted %s:%s (cordoned)", t.Key, t.Effect), false
		}
	}
	if !c.Ready {
		why := c.NotReady
		if why == "" {
			why = "no successful probe yet"
		}
		return "not ready: " + why, false
	}
	if c.Max > 0 && c.InFlight >= c.Max {
		return fmt.Sprintf("full (%d of %d task pods in flight)", c.InFlight, c.Max), true
	}
	return "", false
}

// mismatch returns the first selector pair (in key order) the labels miss.
func mismatch(sel, labels map[string]string) (string, string, bool) {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v, ok := labels[k]; !ok || v != sel[k] {
			return k, sel[k], true
		}
	}
	return "", "", false
}

// score is the weighted rendezvous score -w/ln(u) with u uniform in (0,1)
// from hash(key, cluster): the cluster with the highest score wins, and a
// cluster wins a share of keys proportional to w.
func score(key string, c Cluster) float64 {
	w := float64(max(c.Weight, 1))
	if c.Max > 0 {
		w *= float64(c.Max-c.InFlight) / float64(c.Max)
	}
	x := mixhash.Sum64(key, c.Name)
	u := (float64(x>>11) + 0.5) / (1 << 53)
	return -w / math.Log(u)
}
