package placement

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func ready(name string, labels map[string]string) Cluster {
	return Cluster{Name: name, Labels: labels, Ready: true}
}

func TestPlaceFilters(t *testing.T) {
	gpu := map[string]string{"gpu": "true"}
	cases := []struct {
		name     string
		req      Request
		clusters []Cluster
		want     string   // the chosen cluster, or "" when none fits
		reasons  []string // substrings of the NoFit message
	}{
		{
			name:     "task selector keeps only matching clusters",
			req:      Request{Key: "a", TaskSelector: gpu},
			clusters: []Cluster{ready("east", nil), ready("west", gpu)},
			want:     "west",
		},
		{
			name:     "workflow selector too",
			req:      Request{Key: "a", WorkflowSelector: map[string]string{"region": "eu"}},
			clusters: []Cluster{ready("east", map[string]string{"region": "us"}), ready("west", map[string]string{"region": "eu"})},
			want:     "west",
		},
		{
			name:     "selector value must be equal",
			req:      Request{Key: "a", TaskSelector: gpu},
			clusters: []Cluster{ready("east", map[string]string{"gpu": "false"})},
			reasons:  []string{"east: does not match the task's clusterSelector gpu=true"},
		},
		{
			name:     "tenant allow-list",
			req:      Request{Key: "a", Allowed: []string{"east"}},
			clusters: []Cluster{ready("east", nil), ready("west", nil)},
			want:     "east",
		},
		{
			name:     "empty allow-list allows nothing",
			req:      Request{Key: "a", Allowed: []string{}},
			clusters: []Cluster{ready("east", nil)},
			reasons:  []string{"east: not among the tenant's allowed clusters"},
		},
		{
			name: "cordoned and drained clusters get nothing new",
			req:  Request{Key: "a"},
			clusters: []Cluster{
				{Name: "east", Ready: true, Taints: []corev1.Taint{{Key: "rotor.dev/cordon", Effect: corev1.TaintEffectNoSchedule}}},
				{Name: "west", Ready: true, Taints: []corev1.Taint{{Key: "rotor.dev/drain", Effect: corev1.TaintEffectNoExecute}}},
				{Name: "north", Ready: true, Taints: []corev1.Taint{{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}}},
			},
			want: "north",
		},
		{
			name:     "not ready",
			req:      Request{Key: "a"},
			clusters: []Cluster{{Name: "east", NotReady: "Get /readyz: connection refused"}},
			reasons:  []string{"east: not ready: Get /readyz: connection refused"},
		},
		{
			name:     "full",
			req:      Request{Key: "a"},
			clusters: []Cluster{{Name: "east", Ready: true, Max: 5, InFlight: 5}, {Name: "west", Ready: true, Max: 5, InFlight: 4}},
			want:     "west",
		},
		{
			name:     "lowest failover group with room wins",
			req:      Request{Key: "a"},
			clusters: []Cluster{{Name: "west", Ready: true, Group: 1, Weight: 100}, {Name: "east", Ready: true, Group: 0}},
			want:     "east",
		},
		{
			name:     "backup group when the primary is full",
			req:      Request{Key: "a"},
			clusters: []Cluster{{Name: "west", Ready: true, Group: 1}, {Name: "east", Ready: true, Group: 0, Max: 1, InFlight: 1}},
			want:     "west",
		},
		{
			name:     "backup group when the primary is lost",
			req:      Request{Key: "a"},
			clusters: []Cluster{{Name: "west", Ready: true, Group: 1}, {Name: "east", Group: 0, NotReady: "unreachable"}},
			want:     "west",
		},
		{
			name:    "no clusters at all",
			req:     Request{Key: "a"},
			reasons: []string{"no target cluster is registered"},
		},
		{
			name: "every reason is listed, by cluster name",
			req:  Request{Key: "a", TaskSelector: gpu},
			clusters: []Cluster{
				{Name: "west", Labels: gpu, Ready: true, Max: 2, InFlight: 2},
				{Name: "east", Ready: true},
			},
			reasons: []string{"no target cluster fits: east: does not match the task's clusterSelector gpu=true; west: full (2 of 2 task pods in flight)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.req, tc.clusters)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("Place = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			var nf *NoFit
			if !errors.As(err, &nf) {
				t.Fatalf("Place = %q, %v; want a NoFit", got, err)
			}
			for _, r := range tc.reasons {
				if !strings.Contains(err.Error(), r) {
					t.Errorf("message %q does not say %q", err, r)
				}
			}
		})
	}
}

func TestNoFitOnlyFull(t *testing.T) {
	_, err := Place(Request{Key: "a"}, []Cluster{{Name: "a", Ready: true, Max: 1, InFlight: 1}, {Name: "b", Ready: true, Max: 2, InFlight: 3}})
	if nf := err.(*NoFit); !nf.OnlyFull() {
		t.Fatalf("%v: want only full", err)
	}
	_, err = Place(Request{Key: "a"}, []Cluster{{Name: "a", Ready: true, Max: 1, InFlight: 1}, {Name: "b"}})
	if nf := err.(*NoFit); nf.OnlyFull() {
		t.Fatalf("%v: one is not ready, not only full", err)
	}
}

// randomClusters builds a random fleet: labels, groups, weights, health,
// taints and load all vary.
func randomClusters(r *rand.Rand) []Cluster {
	n := 1 + r.Intn(6)
	out := make([]Cluster, n)
	for i := range out {
		c := Cluster{Name: fmt.Sprintf("c%d", i), Weight: int32(r.Intn(4)), Group: int32(r.Intn(3)), Ready: r.Intn(5) > 0}
		if r.Intn(2) == 0 {
			c.Labels = map[string]string{"gpu": "true"}
		}
		if r.Intn(6) == 0 {
			c.Taints = []corev1.Taint{{Key: "rotor.dev/cordon", Effect: corev1.TaintEffectNoSchedule}}
		}
		if r.Intn(2) == 0 {
			c.Max = 1 + r.Intn(5)
			c.InFlight = r.Intn(c.Max + 2)
		}
		out[i] = c
	}
	return out
}

// TestPlaceProperties: for random fleets and requests the choice is
// deterministic and independent of the order clusters are listed in, it
// passes every filter, it is in the lowest eligible failover group, and
// NoFit comes only when every cluster fails a filter.
func TestPlaceProperties(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 5000; i++ {
		clusters := randomClusters(r)
		req := Request{Key: fmt.Sprintf("ns/wf/n%d/0", i)}
		if r.Intn(2) == 0 {
			req.TaskSelector = map[string]string{"gpu": "true"}
		}
		if r.Intn(4) == 0 {
			req.Allowed = []string{"c0", "c2"}
		}
		got, err := Place(req, clusters)
		shuffled := append([]Cluster(nil), clusters...)
		r.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		again, err2 := Place(req, shuffled)
		if got != again || (err == nil) != (err2 == nil) {
			t.Fatalf("case %d: order changed the result: %q/%v vs %q/%v", i, got, err, again, err2)
		}
		allowed := map[string]bool{}
		for _, n := range req.Allowed {
			allowed[n] = true
		}
		var eligible []Cluster
		for _, c := range clusters {
			if why, _ := filter(req, map[string]bool(nil), c); why == "" && (req.Allowed == nil || allowed[c.Name]) {
				eligible = append(eligible, c)
			}
		}
		if err != nil {
			if len(eligible) > 0 {
				t.Fatalf("case %d: NoFit (%v) with %d eligible clusters", i, err, len(eligible))
			}
			continue
		}
		lowest := eligible[0].Group
		for _, c := range eligible {
			lowest = min(lowest, c.Group)
		}
		found := false
		for _, c := range eligible {
			if c.Name == got {
				found = true
				if c.Group != lowest {
					t.Fatalf("case %d: chose %s in group %d, group %d had room", i, got, c.Group, lowest)
				}
			}
		}
		if !found {
			t.Fatalf("case %d: chose %s, which fails a filter", i, got)
		}
	}
}

// TestPlaceSpreadsByWeight: over many attempts each cluster's share is
// close to its weight's share, and a half-full cluster gets about half
// the share it would get empty.
func TestPlaceSpreadsByWeight(t *testing.T) {
	const n = 30000
	count := func(clusters []Cluster) map[string]int {
		out := map[string]int{}
		for i := 0; i < n; i++ {
			c, err := Place(Request{Key: fmt.Sprintf("tenant/wf-%d/a/0", i)}, clusters)
			if err != nil {
				t.Fatal(err)
			}
			out[c]++
		}
		return out
	}
	got := count([]Cluster{{Name: "a", Weight: 1, Ready: true}, {Name: "b", Weight: 2, Ready: true}, {Name: "c", Weight: 3, Ready: true}})
	for name, w := range map[string]float64{"a": 1, "b": 2, "c": 3} {
		share := float64(got[name]) / n
		if want := w / 6; share < want-0.02 || share > want+0.02 {
			t.Errorf("cluster %s got %.3f of the attempts, want %.3f ± 0.02", name, share, want)
		}
	}
	got = count([]Cluster{{Name: "a", Ready: true, Max: 10, InFlight: 5}, {Name: "b", Ready: true, Max: 10}})
	if share := float64(got["a"]) / n; share < 1.0/3-0.02 || share > 1.0/3+0.02 {
		t.Errorf("half-full cluster got %.3f of the attempts, want 1/3 ± 0.02", share)
	}
}
