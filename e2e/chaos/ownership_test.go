package chaos

import (
	"strings"
	"testing"
	"time"
)

func TestWritesOutsideOwnership(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// Partition 0 moves from r0 to r1 at 10 s; partition 1 stays with r2.
	maps := []MapSeen{{At: at(0), Owners: []string{"r0", "r2"}}, {At: at(10), Owners: []string{"r1", "r2"}}}
	part := func(ns string) int { return map[string]int{"a": 0, "b": 1}[ns] }
	writes := []WriteSeen{
		{Replica: "r0", Namespace: "a", Name: "w1", Resource: "workflows/status", At: at(5)},    // owner
		{Replica: "r0", Namespace: "a", Name: "w1", Resource: "workflows/status", At: at(10.3)}, // just after the move: within slack
		{Replica: "r1", Namespace: "a", Name: "w1", Resource: "workflows/status", At: at(9.8)},  // the map seen late: within slack
		{Replica: "r1", Namespace: "a", Name: "w2", Resource: "workflows/status", At: at(30)},   // owner
		{Replica: "r2", Namespace: "b", Name: "w3", Resource: "workflows", At: at(12)},          // owner
		{Replica: "r0", Namespace: "a", Name: "w1", Resource: "workflows/status", At: at(14)},   // 4 s after losing it
		{Replica: "r2", Namespace: "a", Name: "w4", Resource: "workflows/status", At: at(3)},    // never owned a
		{Replica: "r0", Namespace: "a", Name: "w5", Resource: "workflows/status", At: at(-5)},   // before any map
	}
	got := WritesOutsideOwnership(writes, maps, part, 500*time.Millisecond)
	if len(got) != 3 {
		t.Fatalf("got %d problems, want 3 (the late r0 write, r2 on a, the write before any map):\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, want := range []string{"r0 wrote workflows/status a/w1", "r2 wrote workflows/status a/w4", "r0 wrote workflows/status a/w5"} {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, want)
		}
		if !found {
			t.Errorf("no problem starting %q in %v", want, got)
		}
	}
	if got := WritesOutsideOwnership(writes[:5], maps, part, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("owned writes flagged: %v", got)
	}
}
