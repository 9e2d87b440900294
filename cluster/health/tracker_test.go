package health

import (
	"testing"
	"time"
)

var (
	up     = Result{Answered: true, OK: true}
	sick   = Result{Answered: true, Err: "/readyz answered 500: [-]etcd failed"}
	silent = Result{Err: "dial tcp 127.0.0.1:1: connect: connection refused"}
)

func TestObserve(t *testing.T) {
	th := Thresholds{Failure: 3, Success: 2}
	cases := []struct {
		name          string
		results       []Result
		reachable     bool
		ready         bool
		changedAtStep int // the step (0-based) Reachable last flipped at
		lastErr       string
	}{
		{"first answer decides at once", []Result{up}, true, true, 0, ""},
		{"first silence decides at once", []Result{silent}, false, false, 0, silent.Err},
		{"two silences are not enough", []Result{up, silent, silent}, true, true, 0, silent.Err},
		{"three silences make it unreachable as of the first", []Result{up, silent, silent, silent}, false, false, 1, silent.Err},
		{"an answer resets the run", []Result{up, silent, silent, up, silent, silent}, true, true, 0, silent.Err},
		{"one answer does not bring it back", []Result{silent, up}, false, false, 0, ""},
		{"two answers bring it back", []Result{silent, up, up}, true, true, 2, ""},
		{"answering but not ready", []Result{up, sick, sick, sick}, true, false, 0, sick.Err},
		{"not ready needs the threshold too", []Result{up, sick, sick}, true, true, 0, sick.Err},
		{"back to ready after success threshold", []Result{sick, up, up}, true, true, 0, ""},
		{"unreachable is never ready", []Result{up, silent, silent, silent, up}, false, false, 1, ""},
	}
	base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			for i, r := range tc.results {
				s = Observe(s, th, r, base.Add(time.Duration(i)*time.Second))
			}
			if s.Reachable != tc.reachable || s.Ready != tc.ready || s.LastError != tc.lastErr {
				t.Fatalf("reachable=%v ready=%v err=%q; want %v %v %q", s.Reachable, s.Ready, s.LastError, tc.reachable, tc.ready, tc.lastErr)
			}
			if want := base.Add(time.Duration(tc.changedAtStep) * time.Second); !s.ChangedAt.Equal(want) {
				t.Fatalf("changed at %s, want %s", s.ChangedAt, want)
			}
		})
	}
}

// TestObserveDefaults: zero thresholds take the documented defaults
// (unreachable after 3 silent probes, back after 1 answer).
func TestObserveDefaults(t *testing.T) {
	var s State
	now := time.Now()
	for i, r := range []Result{up, silent, silent} {
		s = Observe(s, Thresholds{}, r, now.Add(time.Duration(i)*time.Second))
	}
	if !s.Reachable {
		t.Fatal("unreachable after 2 silent probes; the default threshold is 3")
	}
	s = Observe(s, Thresholds{}, silent, now)
	if s.Reachable {
		t.Fatal("still reachable after 3 silent probes")
	}
	s = Observe(s, Thresholds{}, up, now)
	if !s.Reachable || !s.Ready {
		t.Fatal("one answer should bring it back with the default success threshold 1")
	}
}
