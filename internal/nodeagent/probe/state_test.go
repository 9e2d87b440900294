package probe

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestObserve(t *testing.T) {
	spec := Spec{Period: time.Second, Timeout: time.Second, SuccessThreshold: 2, FailureThreshold: 3}
	for _, tc := range []struct {
		name    string
		initial Result
		checks  string // s = success, f = failure
		want    []Result
	}{
		{"readiness needs two successes", Failure, "ss", []Result{Failure, Success}},
		{"readiness reset by a failure", Failure, "sfss", []Result{Failure, Failure, Failure, Success}},
		{"liveness needs three failures", Success, "fff", []Result{Success, Success, Failure}},
		{"liveness survives intermittent failures", Success, "ffsff", []Result{Success, Success, Success, Success, Success}},
		{"startup stays unknown below threshold", Unknown, "ff", []Result{Unknown, Unknown}},
		{"startup fails at threshold", Unknown, "fff", []Result{Unknown, Unknown, Failure}},
		{"startup succeeds", Unknown, "fss", []Result{Unknown, Unknown, Success}},
		{"recovery after failure", Success, "fffss", []Result{Success, Success, Failure, Failure, Success}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			s := NewState(spec, tc.initial, start)
			prev := tc.initial
			for i, c := range tc.checks {
				changed := s.Observe(start.Add(time.Duration(i)*time.Second), c == 's')
				if got := s.Result(); got != tc.want[i] || changed != (got != prev) {
					t.Fatalf("after check %d (%c): result %s changed %v, want %s changed %v", i+1, c, got, changed, tc.want[i], tc.want[i] != prev)
				}
				prev = s.Result()
			}
		})
	}
}

func TestDue(t *testing.T) {
	start := time.Unix(1000, 0)
	s := NewState(Spec{InitialDelay: 5 * time.Second, Period: 2 * time.Second}, Failure, start)
	if got := s.Due(); !got.Equal(start.Add(5 * time.Second)) {
		t.Fatalf("first check due %s after start, want after the initial delay (5s)", got.Sub(start))
	}
	s.Observe(start.Add(6*time.Second), true)
	if got := s.Due(); !got.Equal(start.Add(8 * time.Second)) {
		t.Fatalf("next check due %s after start, want one period after the last check (8s)", got.Sub(start))
	}
}

func TestSpecForDefaults(t *testing.T) {
	got := SpecFor(&corev1.Probe{InitialDelaySeconds: 2})
	want := Spec{InitialDelay: 2 * time.Second, Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	if got != want {
		t.Fatalf("SpecFor = %+v, want %+v", got, want)
	}
}
