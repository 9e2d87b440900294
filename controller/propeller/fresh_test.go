package propeller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rotor-dev/rotor/controller/apis/rotor/v1alpha1"
)

func wfAt(uid, rv string) *v1alpha1.Workflow {
	return &v1alpha1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: types.UID(uid), ResourceVersion: rv}}
}

// TestFreshCopies: a cache that still shows a version our writes replaced
// gives way to the written copy, through several writes in a row; any
// other version (ours seen, someone else's, a new incarnation) wins and
// ends the entry.
func TestFreshCopies(t *testing.T) {
	f := newFreshCopies()
	if got := f.newest("ns/w", wfAt("u", "1")); got.ResourceVersion != "1" {
		t.Fatalf("no write yet: got version %s, want the cache's 1", got.ResourceVersion)
	}
	f.wrote("ns/w", "1", wfAt("u", "2"))
	if got := f.newest("ns/w", wfAt("u", "1")); got.ResourceVersion != "2" {
		t.Fatalf("cache at the replaced 1: got %s, want our 2", got.ResourceVersion)
	}
	f.wrote("ns/w", "2", wfAt("u", "3")) // a second write before the cache moved
	for _, lagging := range []string{"1", "2"} {
		if got := f.newest("ns/w", wfAt("u", lagging)); got.ResourceVersion != "3" {
			t.Fatalf("cache at the replaced %s: got %s, want our 3", lagging, got.ResourceVersion)
		}
	}
	if got := f.newest("ns/w", wfAt("u", "3")); got.ResourceVersion != "3" || f.len() != 0 {
		t.Fatalf("cache caught up: got %s with %d entries, want 3 and none", got.ResourceVersion, f.len())
	}

	f.wrote("ns/w", "3", wfAt("u", "4"))
	if got := f.newest("ns/w", wfAt("u", "9")); got.ResourceVersion != "9" || f.len() != 0 {
		t.Fatalf("someone else's version 9: got %s with %d entries, want 9 and none", got.ResourceVersion, f.len())
	}

	f.wrote("ns/w", "3", wfAt("u", "4"))
	if got := f.newest("ns/w", wfAt("other-uid", "3")); got.UID != "other-uid" || f.len() != 0 {
		t.Fatalf("a new workflow of the same name: got uid %s, want the cache's", got.UID)
	}
}
