package backoff

import (
	"testing"
	"time"
)

func TestFailed(t *testing.T) {
	s := time.Second
	p := Policy{Initial: 10 * s, Max: 60 * s, ResetAfter: 100 * s}
	for _, tc := range []struct {
		name   string
		ranFor []time.Duration
		want   []time.Duration
	}{
		{"first retry is immediate then doubles", []time.Duration{0, 0, 0, 0}, []time.Duration{0, 10 * s, 20 * s, 40 * s}},
		{"capped at max", []time.Duration{0, 0, 0, 0, 0, 0}, []time.Duration{0, 10 * s, 20 * s, 40 * s, 60 * s, 60 * s}},
		{"long run resets", []time.Duration{0, 0, 0, 100 * s, 0}, []time.Duration{0, 10 * s, 20 * s, 0, 10 * s}},
		{"short runs do not reset", []time.Duration{0, 99 * s, 99 * s}, []time.Duration{0, 10 * s, 20 * s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Backoff{Policy: p}
			for i, r := range tc.ranFor {
				if got := b.Failed(r); got != tc.want[i] {
					t.Fatalf("failure %d: wait %s, want %s", i+1, got, tc.want[i])
				}
			}
		})
	}
}

func TestDefaultsAreTheKubelets(t *testing.T) {
	var b Backoff
	waits := []time.Duration{b.Failed(0), b.Failed(0), b.Failed(0)}
	if waits[1] != 10*time.Second || waits[2] != 20*time.Second {
		t.Fatalf("zero policy waits %v, want [0 10s 20s]", waits)
	}
	if p := (Policy{}).WithDefaults(); p != Kubelet {
		t.Fatalf("zero policy with defaults = %+v, want %+v", p, Kubelet)
	}
}

func TestReset(t *testing.T) {
	b := Backoff{Policy: Policy{Initial: time.Second}}
	b.Failed(0)
	b.Failed(0)
	b.Reset()
	if got := b.Failed(0); got != 0 {
		t.Fatalf("first failure after Reset waits %s, want 0", got)
	}
}
