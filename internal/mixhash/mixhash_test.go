package mixhash

import "testing"

// TestSum64Stable pins values (computed with the ring's and placement's
// hashing before they shared this package): a namespace's partition is
// derived from them and must not move when this code changes.
func TestSum64Stable(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  uint64
	}{
		{[]string{"tenant-00"}, 0x657ba41c369b6cee},
		{[]string{"partition-0"}, 0xcf6628e1ba96ea97},
		{[]string{"ns/wf/a/0", "east"}, 0xb0d4873caec7913},
	} {
		if got := Sum64(tc.parts...); got != tc.want {
			t.Errorf("Sum64(%q) = %#x, want %#x", tc.parts, got, tc.want)
		}
	}
}
