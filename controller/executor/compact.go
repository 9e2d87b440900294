package executor

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

// CompactAbove is the number of node statuses above which succeeded task
// nodes are stored compactly. Below it every attempt stays visible; above
// it the Workflow object must stay far under etcd's 1.5 MiB limit.
const CompactAbove = 200

// unpack merges the compacted node statuses into Status.Nodes for the
// round.
func (r *round) unpack() error {
	st := &r.wf.Status
	if st.CompactedNodes == "" {
		return nil
	}
	all, err := st.AllNodes()
	if err != nil {
		return fmt.Errorf("workflow %s/%s: %w", r.wf.Namespace, r.wf.Name, err)
	}
	st.Nodes, st.CompactedNodes = all, ""
	return nil
}

// pack compacts what it can and moves compact node statuses out of
// Status.Nodes into the single CompactedNodes field: one string instead
// of thousands of map entries keeps both the object and its managedFields
// small.
func (r *round) pack() {
	r.compact()
	st := &r.wf.Status
	packed := map[string]v1alpha1.NodeStatus{}
	for id, ns := range st.Nodes {
		if ns.Compact != "" {
			packed[id] = ns
		}
	}
	if len(packed) == 0 {
		return
	}
	enc, err := v1alpha1.EncodeNodes(packed)
	if err != nil {
		return // keep them in Nodes: bigger, still correct
	}
	for id := range packed {
		delete(st.Nodes, id)
	}
	st.CompactedNodes = enc
}

// compact shrinks succeeded pod-task nodes that succeeded at their only
// attempt to their phase, outputs and a one-string summary, once the
// workflow has more than CompactAbove node statuses. Failed, running and
// retried nodes keep their full history.
func (r *round) compact() {
	st := &r.wf.Status
	if len(st.Nodes) <= CompactAbove {
		return
	}
	for id, ns := range st.Nodes {
		if ns.Phase != v1alpha1.NodeSucceeded || ns.Compact != "" || len(ns.Attempts) == 0 || ns.Type != "pod" || ns.Spec != nil {
			continue
		}
		cluster := ns.Attempts[0].Cluster
		same := true // one cluster, and no failed attempt worth keeping
		for _, a := range ns.Attempts {
			same = same && a.Cluster == cluster && a.Phase == v1alpha1.NodeSucceeded
		}
		if !same || strings.Contains(cluster, ":") || ns.StartedAt == nil || ns.FinishedAt == nil {
			continue
		}
		ms := ns.FinishedAt.Sub(ns.StartedAt.Time).Milliseconds()
		st.Nodes[id] = v1alpha1.NodeStatus{
			Phase: ns.Phase, Outputs: ns.Outputs,
			Compact: fmt.Sprintf("%s:%d:%d:%d", cluster, len(ns.Attempts), ns.StartedAt.Unix(), ms),
		}
	}
}

// CompactInfo is a compact node's summary.
type CompactInfo struct {
	Cluster    string
	Attempts   int32
	StartedAt  time.Time
	FinishedAt time.Time
}

// ParseCompact reads NodeStatus.Compact.
func ParseCompact(s string) (CompactInfo, bool) {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return CompactInfo{}, false
	}
	n, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseInt(f[2], 10, 64)
	ms, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return CompactInfo{}, false
	}
	t := time.Unix(start, 0)
	return CompactInfo{Cluster: f[0], Attempts: int32(n), StartedAt: t, FinishedAt: t.Add(time.Duration(ms) * time.Millisecond)}, true
}

// expand gives a compact node back its attempts (numbers and cluster only)
// for code that walks attempts, such as cleanup.
func expand(ns v1alpha1.NodeStatus) v1alpha1.NodeStatus {
	info, ok := ParseCompact(ns.Compact)
	if !ok {
		return ns
	}
	ns.Type = "pod"
	start, end := metav1.NewTime(info.StartedAt), metav1.NewTime(info.FinishedAt)
	ns.StartedAt, ns.FinishedAt = &start, &end
	for i := int32(0); i < info.Attempts; i++ {
		ns.Attempts = append(ns.Attempts, v1alpha1.Attempt{Number: i, Cluster: info.Cluster, Pod: "compacted"})
	}
	return ns
}
