package lease

import (
	"testing"
	"time"
)

func TestValidity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := NewValidity(500 * time.Millisecond)
	if v.Valid(t0) {
		t.Fatal("valid before any renewal")
	}
	v.Renewed(t0, 3*time.Second)
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {2 * time.Second, true}, {2499 * time.Millisecond, true}, {2500 * time.Millisecond, false}, {time.Hour, false}} {
		if got := v.Valid(t0.Add(tc.at)); got != tc.want {
			t.Errorf("Valid(t0+%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
	// A late answer to an older keepalive must not shorten the deadline.
	v.Renewed(t0.Add(-time.Second), 3*time.Second)
	if !v.Valid(t0.Add(2 * time.Second)) {
		t.Fatal("an older renewal moved the deadline back")
	}
	// A frozen replica wakes far past its deadline: not valid, whatever
	// it last believed.
	if v.Valid(t0.Add(6 * time.Second)) {
		t.Fatal("valid after waking past the deadline")
	}
	v.Lost()
	v.Renewed(t0.Add(10*time.Second), 3*time.Second)
	if v.Valid(t0.Add(10*time.Second)) || v.Remaining(t0) != 0 {
		t.Fatal("a lost lease came back")
	}
}
