package harness

import (
	"strings"
	"testing"
)

func TestPodLogDuplicates(t *testing.T) {
	l := PodLog{}
	// One pod seen twice (an Add, then an Update after a relist) and
	// another attempt: clean.
	l.Add(PodSeen{Target: "target-1", Namespace: "n", Name: "wf-a-0", UID: "u1"})
	l.Add(PodSeen{Target: "target-1", Namespace: "n", Name: "wf-a-0", UID: "u1"})
	l.Add(PodSeen{Target: "target-2", Namespace: "n", Name: "wf-a-1", UID: "u2"})
	if d := l.Duplicates(); len(d) != 0 || len(l) != 2 {
		t.Fatalf("clean pods: duplicates %v over %d attempts, want none over 2", d, len(l))
	}
	// The same attempt in the other target: two pods for one attempt.
	l.Add(PodSeen{Target: "target-2", Namespace: "n", Name: "wf-a-0", UID: "u3"})
	// Re-created in the same target under the same name.
	l.Add(PodSeen{Target: "target-2", Namespace: "n", Name: "wf-a-1", UID: "u4"})
	d := l.Duplicates()
	if len(d) != 2 || !strings.HasPrefix(d[0], "n/wf-a-0: 2 pods") || !strings.HasPrefix(d[1], "n/wf-a-1: 2 pods") {
		t.Fatalf("duplicates = %q, want n/wf-a-0 and n/wf-a-1 with 2 pods each", d)
	}
}
